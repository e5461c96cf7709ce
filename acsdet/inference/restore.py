"""Restoring geometry: per-slice detections of the LPI-ordered volume -> 3D lesions reported in
the volume's voxels, the input file's own voxel indices and physical LPS millimetres, with their
RECIST diameters, volume and a label map in the volume's grid (as nnDetection's ``restore``
follows its ``predictor``). Pure numpy on a :class:`~acsdet.io.CTVolume`; no model."""
import dataclasses
from typing import List, Optional, Tuple

import numpy as np

from ..io import CTVolume
from .grouping import GroupingRule, Lesion, SliceDetection, group_detections
from .recist import recist
from .results import DetectionResult, LesionFinding, Provenance


def box_window(box, shape: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the pixels a continuous box ``[x1, y1, x2, y2]`` touches (edges
    rounded out), clipped to an image of ``shape`` ``(H, W)``."""
    h, w = shape
    x0, y0 = int(np.floor(max(box[0], 0))), int(np.floor(max(box[1], 0)))
    x1, y1 = int(np.ceil(min(box[2], w))), int(np.ceil(min(box[3], h)))
    return x0, y0, x1, y1


def masks_in_boxes(boxes: np.ndarray, masks) -> Optional[List[np.ndarray]]:
    """Each detection's mask inside its box (:func:`box_window`): ``[(y1 - y0, x1 - x0) bool]``,
    copies, from masks ``(n, H, W)`` (a numpy array or a tensor); None for None. A lesion is its
    masks inside their boxes, so this is all a detection needs to keep (full-image masks, held
    for every key slice of a CT, made the inference's memory grow with the CT's length)."""
    if masks is None:
        return None
    shape = tuple(masks.shape[1:])
    out = []
    for box, mask in zip(boxes, masks):
        x0, y0, x1, y1 = box_window(box, shape)
        out.append(np.array(mask[y0:y1, x0:x1], dtype=bool))
    return out


def restore_lesions(
    vol: CTVolume,
    preds,
    slices: Tuple[int, int],
    score_thr: float,
    rule: GroupingRule = GroupingRule(),
    provenance: Provenance = Provenance()
) -> DetectionResult:
    """Per-slice predictions in the volume's grid -> 3D lesions in the input's geometry.

    Args:
        vol: the CT the predictions were made on.
        preds: ``[(slice index, boxes (n, 4), scores (n,), masks)]``, ``masks`` each
            detection's mask: ``(n, H, W)``, or inside its box (:func:`masks_in_boxes`), or
            None.
        slices: the ``(start, end)`` slices that were processed.
        score_thr: the score the predictions were kept at (recorded).
        rule: how detections are grouped (sized with the volume's slice and pixel spacing).
        provenance: what made the predictions.

    Returns:
        A :class:`DetectionResult`: each lesion a :class:`LesionFinding` with its geometry in
        the volume's voxels, the input file's own indices and LPS mm, and the label map.
    """
    dets, per_slice = [], []
    h, w = vol.hu.shape[1:]
    for k, boxes, scores, masks in preds:
        crops = masks_in_boxes(boxes, masks) if hasattr(masks, 'shape') else masks
        for j, (box, score) in enumerate(zip(boxes, scores)):
            x0, y0, x1, y1 = box_window(box, (h, w))
            crop = None if crops is None else crops[j]
            size = (max(y1 - y0, 0), max(x1 - x0, 0))
            if crop is not None and crop.shape != size:
                raise ValueError(f'slice {k}, detection {j}: a mask of {crop.shape} px for a '
                                 f'box of {size} px')
            dets.append(SliceDetection(k, np.asarray(box, float), float(score), crop, (x0, y0)))
    lesions = group_detections(
        dets, rule=rule, slice_mm=_slice_mm(vol), pixel_mm=vol.pixel_spacing_xy)
    label_map = np.zeros(vol.hu.shape, np.uint16)
    records = []
    for i, les in enumerate(lesions, start=1):
        records.append(lesion_finding(vol, les, i, label_map))
        for d in les.members:
            per_slice.append(
                dict(
                    lesion=i,
                    slice=d.slice_index,
                    box=[round(float(v), 2) for v in d.box],
                    score=round(d.score, 4)))
    return DetectionResult(
        vol,
        records,
        per_slice,
        label_map,
        tuple(slices),
        score_thr,
        grouping=dataclasses.asdict(rule),
        provenance=provenance)


def _slice_mm(vol: CTVolume) -> float:
    """The volume's slice spacing: the median gap between its slices."""
    gaps = np.diff(vol.z_positions)
    return float(np.median(gaps)) if len(gaps) else float(vol.spacing[0])


def lesion_finding(vol: CTVolume, les: Lesion, i: int, label_map: np.ndarray) -> LesionFinding:
    """The record of lesion ``i``; paints its members' masks into ``label_map`` (first come,
    first kept)."""
    sx, sy = vol.pixel_spacing_xy
    shape = vol.hu.shape[1:]
    area_px = 0
    for d in les.members:
        m = d.full_mask(shape)
        label_map[d.slice_index][m & (label_map[d.slice_index] == 0)] = i
        area_px += int(m.sum())
    key = les.key
    rec = recist(key.full_mask(shape), (sx, sy))
    x1, y1, z1, x2, y2, z2 = les.box_3d()
    # voxel-centre extents: columns x1 .. x2 - 1 (continuous box edges), slices z1 .. z2
    corners = np.array([[x, y, z] for x in (x1, x2 - 1) for y in (y1, y2 - 1) for z in (z1, z2)])
    stored = vol.to_stored_index(corners)
    lps = vol.to_lps(corners)
    kb = key.box
    centre = np.array([(kb[0] + kb[2] - 1) / 2, (kb[1] + kb[3] - 1) / 2, key.slice_index])
    slice_mm = _slice_mm(vol)
    return LesionFinding(
        id=i,
        score=round(les.score, 4),
        key_slice=key.slice_index,
        key_slice_stored=int(round(float(vol.to_stored_index(centre)[2]))),
        slices=list(les.slice_range),
        num_slices=les.slice_range[1] - les.slice_range[0] + 1,
        key_box_px=[round(float(v), 2) for v in kb],
        box_voxel=dict(
            x=[round(float(x1), 2), round(float(x2), 2)],
            y=[round(float(y1), 2), round(float(y2), 2)],
            z=[int(z1), int(z2)]),
        box_stored_index=dict(
            min=np.round(stored.min(0), 2).tolist(), max=np.round(stored.max(0), 2).tolist()),
        box_lps_mm=dict(min=np.round(lps.min(0), 2).tolist(), max=np.round(lps.max(0), 2).tolist()),
        center_voxel=np.round(centre, 2).tolist(),
        center_stored_index=np.round(vol.to_stored_index(centre), 2).tolist(),
        center_lps_mm=np.round(vol.to_lps(centre), 2).tolist(),
        recist_long_mm=round(rec['long_mm'], 2) if rec else None,
        recist_short_mm=round(rec['short_mm'], 2) if rec else None,
        recist_long_axis_px=np.round(rec['long_axis'], 2).tolist() if rec else None,
        recist_short_axis_px=np.round(rec['short_axis'], 2).tolist() if rec else None,
        volume_ml=round(area_px * sx * sy * slice_mm / 1000.0, 3))
