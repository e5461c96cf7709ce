"""``write_case``: one CT's results as a case folder.

Everything of a case is written into a temporary folder beside ``<out_dir>/<case>`` by the
registered writers (:mod:`.writers`) and swapped in at the end, so a case folder is always
complete (old or new), never partial; it carries the manifest ``acsdet-case.json``, and only
such a folder of the same input is ever replaced (:mod:`.case_folder`). The files and the
``lesions.json`` schema are in docs/outputs.md.
"""
import os.path as osp
import shutil
from typing import Optional, Sequence

from ..inference.results import DetectionResult
from ..io import input_path
from .case_folder import check_output_location, check_replaceable, commit_case, new_case_dir
from .dicom_kit import DicomOutputError
from .writers import DICOM_TYPES, WRITE_ORDER, CaseOutput, output_types, resolve_writer


class PartialCaseError(DicomOutputError):
    """The DICOM outputs of a case failed; its other outputs were written (``folder``)."""

    def __init__(self, message: str, folder: str):
        super().__init__(message)
        self.folder = folder


def write_case(result: DetectionResult,
               out_dir: str,
               case: Optional[str] = None,
               save_masks: bool = False,
               save_overlays: bool = False,
               visualizer=None,
               outputs: Sequence[str] = (),
               checked: bool = False,
               made_with: Optional[dict] = None) -> str:
    """Write the case folder ``out_dir/<case>`` atomically.

    Args:
        result: what to write; its provenance goes into ``lesions.json`` and the DICOM objects.
        out_dir: the output folder.
        case: the case folder's name (default: the volume's name).
        save_masks: add ``nifti`` to ``outputs``.
        save_overlays: add ``overlays`` to ``outputs``.
        visualizer: draws the overlays (default: a
            :class:`~acsdet.visualization.LesionVisualizer`, the soft-tissue window).
        outputs: output types (:data:`~acsdet.export.writers.OUTPUT_TYPES`); DICOM ones need a
            DICOM input (else :class:`~acsdet.export.dicom_kit.DicomOutputError`, before
            anything is written).
        checked: the output location was checked for this case before (a batch's planner
            checks every case before the model runs); the swap at the end checks it again.
        made_with: what made the result (:func:`~acsdet.export.case_folder.made_with`),
            recorded in the manifest for ``--skip-done``.

    Returns:
        The case folder.

    An existing ``out_dir/<case>`` is replaced only if it is acsdet's case folder of the same
    input (:mod:`acsdet.export.case_folder`); anything else raises
    :class:`~acsdet.export.case_folder.CaseFolderError` and is left as it is.

    A DICOM output that fails (a source header highdicom refuses) costs only the DICOM outputs:
    the others are written and the case folder committed with the types it holds (so
    ``--skip-done`` runs it again), ``lesions.json`` says why under ``dicom``, and then
    :class:`PartialCaseError` (naming the folder) is raised.
    """
    vol = result.volume
    types = output_types(outputs, save_masks, save_overlays)
    if any(t in DICOM_TYPES for t in types):
        from .dicom_kit import dicom_source, require_dicom_extra
        require_dicom_extra()  # highdicom installed, a DICOM input: or an error before any work
        dicom_source(result)
    case = case or vol.name
    final = osp.join(out_dir, case)
    key = vol.input_key
    if not checked:
        if key is not None:
            check_output_location(out_dir, [final], [input_path(key)])
        if osp.lexists(final):  # before the work, not after it
            check_replaceable(final, key)
    tmp = new_case_dir(out_dir, case, key, vol.source)
    try:
        out = CaseOutput(result, tmp, case, types, visualizer)
        failed, done = None, set()
        for t in WRITE_ORDER:
            if t not in types or (failed and t in DICOM_TYPES):  # the SR references the SEG
                continue
            try:
                resolve_writer(t)(out)
                done.add(t)
            except Exception as e:  # the DICOM writers' only; the others' are raised
                if t not in DICOM_TYPES:
                    raise
                failed = f'{t}: {type(e).__name__}: {" ".join(str(e).split())[:300]}'
                lost = [d for d in types if d in DICOM_TYPES and d not in done]
                out.sections.setdefault('dicom', {})['error'] = failed
                out.warnings.append(f'{vol.source}: {", ".join(lost)} not written ({failed})')
        written = tuple(t for t in types if t in done)
        folder = commit_case(tmp, out_dir, case, key, vol.source, written, made_with)
        if failed:
            raise PartialCaseError(
                f'{vol.source}: the DICOM outputs failed ({failed}); the other outputs are in '
                f'{folder}', folder)
        return folder
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
