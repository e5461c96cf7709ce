"""Writing one case's results: ``lesions.json``, ``lesions.csv``, a label map, overlays, a report.

Everything of a case is written into a temporary folder beside ``<out_dir>/<case>`` and swapped
in at the end, so a case folder is always complete (old or new), never partial; it carries the
manifest ``acsdet-case.json``, and only such a folder of the same input is ever replaced
(:mod:`acsdet.apis.case_folder`).

``lesions.json`` (schema ``version`` 1.0):

- ``version``, ``source`` (what was read), ``config``, ``checkpoint``, ``score_thr``,
  ``slices_processed`` ``[start, end)``, ``seconds`` (read / detect / group / total);
- ``geometry``: ``orientation`` (``'LPI'``: index axes towards the patient's left, posterior and
  feet, DeepLesion's slice order), ``size_xyz`` and ``spacing_xyz_mm`` of that volume,
  ``origin_lps_mm``, ``direction`` (row-major 3 x 3, columns = index axes in LPS),
  ``stored_axes`` (``perm``, ``flip``, ``size_xyz`` of the file as stored);
- ``grouping``: the rule that made lesions of the detections (``iou_thr``, ``max_gap``,
  ``depth_ratio``, ``contain_thr``; :class:`~acsdet.apis.lesions.GroupingRule`);
- ``label_map`` (with ``--output-type nifti``): the file and how it relates to the input (a note
  when the input's slice gaps are uneven, which a NIfTI header cannot hold);
- ``dicom`` (with ``--output-type dicom-seg`` / ``dicom-sr``): the files and their series and
  SOP instance UIDs, and per lesion its ``segment_number`` and ``tracking_uid`` (shared by its
  segment and its SR measurement groups);
- ``lesions``: ``id``, ``score``, ``key_slice`` (the LPI-ordered volume) and ``key_slice_stored``,
  ``slices`` [first, last], ``num_slices``, ``key_box_px`` (continuous x1, y1, x2, y2 on the key
  slice), ``box_voxel``, ``box_stored_index`` (voxel centres, the input file's own indices),
  ``box_lps_mm``, ``center_voxel`` / ``center_stored_index`` / ``center_lps_mm`` (centre of the
  key-slice box), ``recist_long_mm`` / ``recist_short_mm`` with their axes in pixels on the key
  slice, ``volume_ml`` (mask voxels x voxel volume);
- ``detections``: every per-slice detection with its ``lesion`` id, ``slice``, ``box``,
  ``score``.
"""
import csv
import html
import io
import json
import os.path as osp
import shutil
from typing import Optional, Sequence, Tuple

import cv2

from ..io import ORIENTATION, input_path
from ..visualization import LesionVisualizer
from .case_folder import check_output_location, check_replaceable, commit_case, new_case_dir
from .lesion_record import CSV_FIELDS, RESULT_VERSION, DetectionResult


def _html(result: DetectionResult, case: str, overlays: dict) -> str:
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


def _label_map_info(vol) -> dict:
    """How ``lesions.nii.gz`` relates to the input (``lesions.json``'s ``label_map``)."""
    err = vol.header_z_error_mm(vol.stored_first_slice() if vol.reference is not None else 0)
    info = dict(
        file='lesions.nii.gz',
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


#: What ``write_case`` can write: ``json`` (always: lesions.json, lesions.csv, report.html),
#: ``nifti`` (lesions.nii.gz), ``dicom-seg`` (lesions_seg.dcm), ``dicom-sr`` (lesions_sr.dcm, with
#: the SEG its groups reference), ``overlays`` (lesion_NNN.png).
OUTPUT_TYPES = ('json', 'nifti', 'dicom-seg', 'dicom-sr', 'overlays')


def output_types(requested: Sequence[str] = (),
                 save_masks: bool = False,
                 save_overlays: bool = False) -> Tuple[str, ...]:
    """The output types to write, in :data:`OUTPUT_TYPES` order: ``json`` always, ``dicom-seg``
    with ``dicom-sr`` (its measurement groups reference the segments)."""
    want = set(requested) | {'json'}
    unknown = sorted(want - set(OUTPUT_TYPES))
    if unknown:
        raise ValueError(f'unknown output type(s) {unknown}; choose from {list(OUTPUT_TYPES)}')
    if save_masks:
        want.add('nifti')
    if save_overlays:
        want.add('overlays')
    if 'dicom-sr' in want:
        want.add('dicom-seg')
    return tuple(t for t in OUTPUT_TYPES if t in want)


def _write_dicom(result: DetectionResult, tmp: str, types, meta: dict, warnings: list) -> dict:
    """Write lesions_seg.dcm / lesions_sr.dcm into ``tmp``; ``lesions.json``'s ``dicom``."""
    from pydicom.uid import generate_uid

    from .dicom_seg import AlgorithmInfo, lesion_segmentation
    from .dicom_sr import lesion_report
    if not result.lesions:
        note = ('no lesion scored at least the threshold: no DICOM SEG / SR written (a SEG needs '
                'a segment, a TID 1500 report a measurement group)')
        warnings.append(f'{result.volume.source}: {note}')
        return dict(note=note)
    algorithm = AlgorithmInfo(meta.get('config', ''), meta.get('checkpoint', ''))
    uids = [generate_uid() for _ in result.lesions]
    seg = lesion_segmentation(result, uids, algorithm)
    seg.save_as(osp.join(tmp, 'lesions_seg.dcm'))
    info = dict(
        seg=dict(
            file='lesions_seg.dcm',
            series_instance_uid=str(seg.SeriesInstanceUID),
            sop_instance_uid=str(seg.SOPInstanceUID)),
        lesions=[
            dict(id=les.id, segment_number=n, tracking_uid=uid)
            for n, (les, uid) in enumerate(zip(result.lesions, uids), 1)
        ])
    if 'dicom-sr' in types:
        sr = lesion_report(result, seg, uids, algorithm)
        sr.save_as(osp.join(tmp, 'lesions_sr.dcm'))
        info['sr'] = dict(
            file='lesions_sr.dcm',
            series_instance_uid=str(sr.SeriesInstanceUID),
            sop_instance_uid=str(sr.SOPInstanceUID))
    return info


def write_case(result: DetectionResult,
               out_dir: str,
               case: Optional[str] = None,
               save_masks: bool = False,
               save_overlays: bool = False,
               meta: Optional[dict] = None,
               visualizer: Optional[LesionVisualizer] = None,
               outputs: Sequence[str] = ()) -> str:
    """Write the case folder ``out_dir/<case>`` (atomically, see the module doc); returns it.

    ``outputs``: output types (:data:`OUTPUT_TYPES`); ``save_masks`` adds ``nifti``,
    ``save_overlays`` adds ``overlays``. DICOM outputs need a DICOM input (else
    :class:`~acsdet.apis.dicom_seg.DicomOutputError`, before anything is written). Overlays are
    drawn by ``visualizer`` (default: a :class:`~acsdet.visualization.LesionVisualizer`, the
    soft-tissue window).

    An existing ``out_dir/<case>`` is replaced only if it is acsdet's case folder of the same
    input (:mod:`acsdet.apis.case_folder`); anything else raises
    :class:`~acsdet.apis.case_folder.CaseFolderError` and is left as it is.
    """
    vol = result.volume
    types = output_types(outputs, save_masks, save_overlays)
    if 'dicom-seg' in types:
        from .dicom_seg import dicom_source
        dicom_source(result)  # a DICOM input, or an error before any work
    case = case or vol.name
    final = osp.join(out_dir, case)
    key = vol.input_key
    if key is not None:
        check_output_location(out_dir, [final], [input_path(key)])
    if osp.lexists(final):  # before the work, not after it
        check_replaceable(final, key)
    tmp = new_case_dir(out_dir, case, key, vol.source)
    try:
        overlays = {}
        if 'overlays' in types:
            visualizer = visualizer or LesionVisualizer()
            for les in result.lesions:
                k = les.key_slice
                mask = result.label_map[k] == les.id
                name = f'lesion_{les.id:03d}.png'
                cv2.imwrite(osp.join(tmp, name), visualizer.finding(vol.hu[k], les, mask))
                overlays[les.id] = name
        extra, warnings = {}, list(vol.warnings)
        if 'nifti' in types:
            import SimpleITK as sitk
            sitk.WriteImage(
                vol.as_input_image(result.label_map), osp.join(tmp, 'lesions.nii.gz'), True)
            extra['label_map'] = _label_map_info(vol)
            if extra['label_map'].get('uneven_slices'):
                warnings.append(f'{vol.source}: {extra["label_map"]["note"]}')
        if 'dicom-seg' in types:
            extra['dicom'] = _write_dicom(result, tmp, types, meta or {}, warnings)
        payload = dict(
            version=RESULT_VERSION,
            source=vol.source,
            **(meta or {}),
            score_thr=result.score_thr,
            slices_processed=list(result.slices),
            seconds={
                k: round(v, 3)
                for k, v in result.seconds.items()
            },
            warnings=warnings,
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
            **extra,
            lesions=[les.to_json() for les in result.lesions],
            detections=result.detections)
        with open(osp.join(tmp, 'lesions.json'), 'w') as f:
            json.dump(payload, f, indent=1, allow_nan=False)  # strict JSON: no NaN / Infinity
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(CSV_FIELDS)
        for les in result.lesions:
            w.writerow(les.csv_row())
        with open(osp.join(tmp, 'lesions.csv'), 'w', newline='') as f:
            f.write(buf.getvalue())
        with open(osp.join(tmp, 'report.html'), 'w') as f:
            f.write(_html(result, case, overlays))
        return commit_case(tmp, out_dir, case, key, vol.source, types)
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
