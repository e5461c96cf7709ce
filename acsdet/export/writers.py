"""The writers of a case folder, as a registry (as MONAI's ``register_writer`` /
``resolve_writer``): each output type has one writer and the one table of its file names
(:data:`OUTPUT_FILES`).

A writer is ``write(out: CaseOutput) -> None``: it writes its files into ``out.folder`` (the
case's temporary folder, swapped in whole by :func:`~acsdet.export.case_writer.write_case`) and
may add a section to ``lesions.json`` (``out.sections``), warnings (``out.warnings``) or
something a later writer needs (``out.shared``: the SEG for the SR, the overlays for the
report). Writers run in :data:`WRITE_ORDER`; ``json`` last, since ``lesions.json`` records what
the others wrote. The ``lesions.json`` schema is in docs/outputs.md.
"""
import csv
import html
import io
import json
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import cv2

from ..inference.results import RESULT_VERSION, DetectionResult
from ..io import ORIENTATION
from ..utils.errors import naming
from ..utils.lookup import look_up

#: Every file a case folder can hold, by output type (``lesion_{id:03d}.png`` a pattern).
OUTPUT_FILES: Dict[str, Tuple[str, ...]] = {
    'json': ('lesions.json', 'lesions.csv', 'report.html'),
    'nifti': ('lesions.nii.gz', ),
    'dicom-seg': ('lesions_seg.dcm', ),
    'dicom-sr': ('lesions_sr.dcm', ),
    'overlays': ('lesion_{id:03d}.png', ),
}
#: The output types, as ``write_case`` takes them (and lists them in a case's manifest).
OUTPUT_TYPES = ('json', 'nifti', 'dicom-seg', 'dicom-sr', 'overlays')
#: The order writers run in.
WRITE_ORDER = ('overlays', 'nifti', 'dicom-seg', 'dicom-sr', 'json')
#: Output types that need a DICOM input.
DICOM_TYPES = ('dicom-seg', 'dicom-sr')

#: ``lesions.csv``'s columns.
CSV_FIELDS = ('id', 'score', 'key_slice', 'key_slice_stored', 'first_slice', 'last_slice',
              'center_x_mm', 'center_y_mm', 'center_z_mm', 'recist_long_mm', 'recist_short_mm',
              'volume_ml')


@dataclass
class CaseOutput:
    """One case being written: the result, its temporary folder, the case name, the output
    types asked for, and what writers hand on (sections of ``lesions.json``, warnings, shared
    objects)."""
    result: DetectionResult
    folder: str
    case: str
    types: Tuple[str, ...]
    visualizer: object = None
    sections: dict = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    shared: dict = field(default_factory=dict)


OUTPUT_WRITERS: Dict[str, Callable[[CaseOutput], None]] = {}


def register_writer(name: str):
    """Register ``write(out: CaseOutput)`` as the writer of output type ``name``."""

    def deco(fn):
        OUTPUT_WRITERS[name] = fn
        return fn

    return deco


def resolve_writer(name: str) -> Callable[[CaseOutput], None]:
    """The writer of output type ``name`` (close names suggested when unknown)."""
    return look_up(name, OUTPUT_WRITERS, 'output type')


def output_types(requested=(), save_masks: bool = False, save_overlays: bool = False):
    """The output types to write, in :data:`OUTPUT_TYPES` order: ``json`` always, ``dicom-seg``
    with ``dicom-sr`` (its measurement groups reference the segments)."""
    want = set(requested) | {'json'}
    unknown = sorted(want - set(OUTPUT_TYPES))
    if unknown:
        raise naming(
            ValueError(f'{{outputs}}: unknown output type(s) {unknown}; choose from '
                       f'{list(OUTPUT_TYPES)}'), 'outputs')
    if save_masks:
        want.add('nifti')
    if save_overlays:
        want.add('overlays')
    if 'dicom-sr' in want:
        want.add('dicom-seg')
    return tuple(t for t in OUTPUT_TYPES if t in want)


def csv_row(les) -> list:
    """The ``lesions.csv`` row of a :class:`~acsdet.inference.LesionFinding`."""
    c = les.center_lps_mm
    return [
        les.id, les.score, les.key_slice, les.key_slice_stored, les.slices[0], les.slices[1], c[0],
        c[1], c[2], les.recist_long_mm, les.recist_short_mm, les.volume_ml
    ]


@register_writer('overlays')
def write_overlays(out: CaseOutput) -> None:
    """``lesion_NNN.png``: each lesion's key slice with its box and mask."""
    from ..visualization import LesionVisualizer
    visualizer = out.visualizer or LesionVisualizer()
    result, overlays = out.result, {}
    for les in result.lesions:
        k = les.key_slice
        mask = result.label_map[k] == les.id
        name = OUTPUT_FILES['overlays'][0].format(id=les.id)
        cv2.imwrite(osp.join(out.folder, name), visualizer.finding(result.volume.hu[k], les, mask))
        overlays[les.id] = name
    out.shared['overlays'] = overlays


def label_map_info(vol) -> dict:
    """How ``lesions.nii.gz`` relates to the input (``lesions.json``'s ``label_map``)."""
    err = vol.header_z_error_mm(vol.stored_first_slice() if vol.reference is not None else 0)
    info = dict(
        file=OUTPUT_FILES['nifti'][0],
        geometry='the input as stored: one label slice per input slice, same size, spacing, '
        'origin and direction')
    if err > 0.01:
        info.update(
            uneven_slices=True,
            header_slice_spacing_mm=round(vol.spacing[0], 4),
            max_slice_position_error_mm=round(err, 3),
            note='the input\'s slice gaps are uneven and a NIfTI header holds one slice spacing: '
            'label slice k belongs to input slice k (not resampled), but the position the header '
            f'gives it is up to {err:.3g} mm off; the true positions are lesions.json\'s '
            '(box_lps_mm, center_lps_mm)')
    return info


@register_writer('nifti')
def write_nifti(out: CaseOutput) -> None:
    """``lesions.nii.gz``: the label map in the input's geometry as stored."""
    import SimpleITK as sitk
    vol = out.result.volume
    sitk.WriteImage(
        vol.as_input_image(out.result.label_map), osp.join(out.folder, OUTPUT_FILES['nifti'][0]),
        True)
    info = out.sections['label_map'] = label_map_info(vol)
    if info.get('uneven_slices'):
        out.warnings.append(f'{vol.source}: {info["note"]}')


def dicom_sources(out: CaseOutput) -> list:
    """The source headers as the derived objects copy them
    (:func:`~acsdet.export.dicom_kit.derivable_sources`), made once per case; what had to
    change is a warning in ``lesions.json``."""
    if 'sources' not in out.shared:
        from .dicom_kit import derivable_sources, dicom_source
        src = dicom_source(out.result)
        out.shared['sources'], notes = derivable_sources(src.datasets)
        out.warnings += [f'{out.result.volume.source}: {n}' for n in notes]
    return out.shared['sources']


@register_writer('dicom-seg')
def write_dicom_seg(out: CaseOutput) -> None:
    """``lesions_seg.dcm`` (:mod:`.dicom_seg`), one segment per lesion; none without a lesion
    (a SEG needs a segment), said in ``lesions.json``'s ``dicom``."""
    from pydicom.uid import generate_uid

    from .dicom_seg import lesion_segmentation
    result = out.result
    if not result.lesions:
        note = ('no lesion scored at least the threshold: no DICOM SEG / SR written (a SEG needs '
                'a segment, a TID 1500 report a measurement group)')
        out.warnings.append(f'{result.volume.source}: {note}')
        out.sections['dicom'] = dict(note=note)
        return
    uids = [generate_uid() for _ in result.lesions]
    seg = lesion_segmentation(result, uids, dicom_sources(out))
    name = OUTPUT_FILES['dicom-seg'][0]
    seg.save_as(osp.join(out.folder, name))
    out.shared.update(seg=seg, tracking_uids=uids)
    out.sections['dicom'] = dict(
        seg=dict(
            file=name,
            series_instance_uid=str(seg.SeriesInstanceUID),
            sop_instance_uid=str(seg.SOPInstanceUID)),
        lesions=[
            dict(id=les.id, segment_number=n, tracking_uid=uid)
            for n, (les, uid) in enumerate(zip(result.lesions, uids), 1)
        ])


@register_writer('dicom-sr')
def write_dicom_sr(out: CaseOutput) -> None:
    """``lesions_sr.dcm`` (:mod:`.dicom_sr`), referencing the SEG written before it."""
    from .dicom_sr import lesion_report
    if 'seg' not in out.shared:  # no lesion: no SEG, no SR (the SEG writer said so)
        return
    sr = lesion_report(out.result, out.shared['seg'], out.shared['tracking_uids'],
                       dicom_sources(out))
    name = OUTPUT_FILES['dicom-sr'][0]
    sr.save_as(osp.join(out.folder, name))
    out.sections['dicom']['sr'] = dict(
        file=name,
        series_instance_uid=str(sr.SeriesInstanceUID),
        sop_instance_uid=str(sr.SOPInstanceUID))


def lesions_json(out: CaseOutput) -> dict:
    """The ``lesions.json`` object of a case (docs/outputs.md)."""
    result = out.result
    vol = result.volume
    return dict(
        version=RESULT_VERSION,
        source=vol.source,
        **result.provenance.to_json(),
        score_thr=result.score_thr,
        slices_processed=list(result.slices),
        seconds={
            k: round(v, 3)
            for k, v in result.seconds.items()
        },
        warnings=list(vol.warnings) + out.warnings,
        inference=result.inference,
        grouping=result.grouping,
        geometry=dict(
            orientation=ORIENTATION,
            size_xyz=[vol.hu.shape[2], vol.hu.shape[1], vol.hu.shape[0]],
            spacing_xyz_mm=[vol.spacing[2], vol.spacing[1], vol.spacing[0]],
            origin_lps_mm=vol.origin.tolist(),
            direction=vol.direction.reshape(-1).tolist(),
            stored_axes=dict(
                perm=list(vol.to_stored[0]),
                flip=list(vol.to_stored[1]),
                size_xyz=list(vol.to_stored[2]))),
        **out.sections,
        lesions=[les.to_json() for les in result.lesions],
        detections=result.detections)


def report_html(result: DetectionResult, case: str, overlays: dict) -> str:
    """``report.html``: the lesions as a table, each with its overlay when there is one."""
    rows = []
    for les in result.lesions:
        img = overlays.get(les.id)
        cell = f'<img src="{html.escape(img)}" width="256">' if img else ''
        rows.append('<tr>' + ''.join(
            f'<td>{html.escape(str(v))}</td>'
            for v in (les.id, f'{les.score:.3f}', les.key_slice, les.slices, les.center_lps_mm,
                      les.recist_long_mm, les.recist_short_mm, les.volume_ml)) +
                    f'<td>{cell}</td></tr>')
    head = ''.join(f'<th>{h}</th>'
                   for h in ('lesion', 'score', 'key slice', 'slices', 'centre (LPS mm)',
                             'RECIST long (mm)', 'short (mm)', 'volume (mL)', 'key slice overlay'))
    return f'''<!doctype html>
<html><head><meta charset="utf-8"><title>acsdet: {html.escape(case)}</title>
<style>body{{font-family:sans-serif}} td,th{{border:1px solid #ccc;padding:4px}}
table{{border-collapse:collapse}}</style></head><body>
<h1>{html.escape(case)}</h1>
<p>{html.escape(result.volume.source)}; {len(result.lesions)} lesion(s) scoring at least
{result.score_thr}; slices {result.slices[0]} to {result.slices[1] - 1} of
{result.volume.hu.shape[0]}. Research use only, not a diagnosis.</p>
<table><tr>{head}</tr>
{"".join(rows)}
</table></body></html>
'''


@register_writer('json')
def write_json(out: CaseOutput) -> None:
    """``lesions.json`` (strict JSON: no NaN / Infinity), ``lesions.csv`` and ``report.html``."""
    js, csv_name, report = OUTPUT_FILES['json']
    with open(osp.join(out.folder, js), 'w') as f:
        json.dump(lesions_json(out), f, indent=1, allow_nan=False)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_FIELDS)
    for les in out.result.lesions:
        w.writerow(csv_row(les))
    with open(osp.join(out.folder, csv_name), 'w', newline='') as f:
        f.write(buf.getvalue())
    with open(osp.join(out.folder, report), 'w') as f:
        f.write(report_html(out.result, out.case, out.shared.get('overlays', {})))
