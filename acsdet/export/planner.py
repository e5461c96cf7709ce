"""Planning a batch run before any model runs: the cases an input list makes (each input once,
``all_series`` expanded), their case names, the inputs that fail before any work, and the checks
that stop the run (the output folder, case folders that are or hold an input, case folders that
may not be replaced)."""
import hashlib
import os.path as osp
from collections import Counter
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from ..io import case_name
from ..io.dicom_discovery import dicom_folder, find_ct_series, is_zip, pick_series
from ..io.readers import readers
from ..utils import check_writable_dir
from ..utils.errors import naming
from .batch import Case, read_manifest_csv
from .case_folder import assign_case_names, check_output_location, check_replaceable
from .dicom_kit import DicomOutputError
from .writers import DICOM_TYPES


def is_dicom_input(path: str) -> bool:
    """Whether ``path`` is read as DICOM (a DICOM folder, a zip, an enhanced-CT file): the first
    registered reader that accepts it says so (``CTReader.is_dicom``)."""
    if not osp.exists(path):
        return False
    chosen = next((r for r in readers() if r.accepts(path)), None)
    return chosen is not None and chosen.is_dicom


def expand_series(case: Case) -> List[Case]:
    """A DICOM folder or zip as one case per CT series (others unchanged), named
    ``<input>_s<SeriesNumber>`` (``<input>_<8 hex of the series UID>`` where numbers repeat).
    Raises :class:`~acsdet.io.CTReadError` for an archive without a CT series."""
    archive = osp.isdir(case.path) or is_zip(case.path)
    if case.series is not None or not archive or not is_dicom_input(case.path):
        return [case]
    with dicom_folder(case.path) as folder:
        ct, _ = find_ct_series(folder, case.path)
    if len(ct) == 1:
        return [Case(case.path, ct[0].uid, case.name)]
    numbers = Counter(s.number for s in ct)

    def suffix(s):
        if s.number is not None and numbers[s.number] == 1:
            return f's{s.number}'
        return hashlib.sha1(s.uid.encode()).hexdigest()[:8]

    return [Case(case.path, s.uid, f'{case.name}_{suffix(s)}') for s in ct]


def check_dicom_outputs(case: Case, outputs: Sequence[str]) -> None:
    """Refuse, before the model runs, DICOM outputs that a case cannot have: a non-DICOM input;
    an SR of a classic series not stored as axial slices (its key slices are no instances).
    Raises :class:`~acsdet.export.dicom_kit.DicomOutputError`, or the reader's
    :class:`~acsdet.io.CTReadError` for a study whose series cannot be picked."""
    import numpy as np

    from .dicom_kit import require_dicom_extra
    require_dicom_extra()
    if not is_dicom_input(case.path):
        raise DicomOutputError.not_dicom(case.path)
    if 'dicom-sr' not in outputs or not (osp.isdir(case.path) or is_zip(case.path)):
        return
    with dicom_folder(case.path) as folder:
        ct, _ = find_ct_series(folder, case.path)
    chosen = pick_series(ct, case.series, case.path)
    try:
        iop = np.array([float(v) for v in chosen.datasets[0].ImageOrientationPatient])
    except (AttributeError, IndexError, TypeError, ValueError):
        return  # enhanced CT, or no orientation: the reader decides
    normal = np.abs(np.cross(iop[:3], iop[3:]))
    if normal.argmax() != 2:
        plane = 'sagittal' if normal.argmax() == 0 else 'coronal'
        raise naming(
            DicomOutputError(f'{case.path}: series {chosen.label()} is stored as {plane} slices, '
                             'so a key slice is not one of its instances and the RECIST axes of '
                             "a DICOM SR cannot be drawn on one: use {outputs} 'dicom-seg' (and "
                             'lesions.json), or an axial series'), 'outputs')


@dataclass
class Plan:
    """A run's cases (with their case folder names), the inputs that failed before any work
    (``[(case, the error)]``), the input keys of both in input order (``summary.csv``'s rows), and
    notes to show (an input given twice)."""
    cases: List[Case]
    names: List[str]
    failed: List[Tuple[Case, Exception]]
    order: List[str]
    notes: List[str] = field(default_factory=list)


def plan_cases(inputs: Sequence[str],
               out_dir: str,
               manifests: Sequence[str] = (),
               series: Optional[str] = None,
               all_series: bool = False,
               outputs: Sequence[str] = ('json', )) -> Plan:
    """Plan a run.

    Args:
        inputs: input paths.
        out_dir: the output folder.
        manifests: CSV manifests adding cases (:func:`~acsdet.export.batch.read_manifest_csv`).
        series: the SeriesInstanceUID of every input without its own.
        all_series: one case per CT series of a DICOM folder or zip.
        outputs: the output types; a DICOM one fails a non-DICOM input here.

    Returns:
        The :class:`Plan`.

    Raises ``OSError`` naming the problem when the run cannot go on: the output folder is not
    writable, a case folder is or holds an input, or an existing case folder may not be
    replaced; :class:`~acsdet.export.batch.ManifestError` for a manifest that cannot be read.
    """
    check_writable_dir(out_dir)
    given = [Case(p, series, case_name(p)) for p in inputs]
    for manifest in manifests:
        given += [
            c if c.series or not series else Case(c.path, series, c.name)
            for c in read_manifest_csv(manifest)
        ]
    plan = Plan([], [], [], [])
    keys = set()
    dicom_out = any(t in DICOM_TYPES for t in outputs)
    for case in given:
        try:
            expanded = expand_series(case) if all_series else [case]
        except ValueError as e:
            plan.failed.append((case, e))
            plan.order.append(case.key)
            continue
        for c in expanded:
            if c.key in keys:
                plan.notes.append(f'{c.path}{" series " + c.series if c.series else ""} is given '
                                  'twice; it runs once')
                continue
            keys.add(c.key)
            plan.order.append(c.key)
            if dicom_out and osp.exists(c.path):
                try:
                    check_dicom_outputs(c, outputs)
                except ValueError as e:  # DicomOutputError, CTReadError
                    plan.failed.append((c, e))
                    continue
            plan.cases.append(c)
    plan.names = assign_case_names(out_dir, [(c.key, c.name) for c in plan.cases])
    folders = [osp.join(out_dir, n) for n in plan.names]
    check_output_location(out_dir, folders,
                          sorted({c.path
                                  for c in plan.cases if osp.exists(c.path)}))
    for folder, c in zip(folders, plan.cases):
        if osp.lexists(folder):
            check_replaceable(folder, c.key)
    return plan
