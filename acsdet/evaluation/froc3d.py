"""Lesion-level FROC in 3D: the protocol of DeepLesion's manually labelled 3D test set (Yan et
al., IEEE TMI 2020; evaluation code in the repository viggin/DeepLesion_manual_test_set), pure
numpy, sharing the 2D protocol's walk (:func:`~acsdet.evaluation.froc.walk_ranking`) and
interpolation (:func:`~acsdet.evaluation.froc.sensitivity_at`).

- Boxes are inclusive voxel boxes ``[x1, y1, z1, x2, y2, z2]`` (z: slice indices of the whole
  series), sizes with the +1 convention (``x2 - x1 + 1``); detections carry a score last.
- Overlap of a detection with a GT box: ``'iou'``, ``'iobb'`` (intersection over the detection's
  box), ``'iogt'`` (over the GT box) or ``'iobbgt'`` (the larger of the two); a hit when it is
  at least ``thr``. Published setting: IoBB >= 0.3 in 3D.
- ``mode='p3d'``: GT drawn on one slice (``z1 == z2``); a detection hits it when its z-range
  holds that slice and the 2D overlap (in x, y) passes.
- The walk is the 2D protocol's: one global ranking by score; a detection that overlaps no GT of
  its volume is a false positive, one that overlaps only GT already hit is neither; sensitivity
  at 2^-3 .. 2^10 FPs per volume, the average over 0.125 .. 8 (the first seven).

Differences from the published code, on purpose: ties of score keep volume then detection order
(a stable sort; the published ``argsort(scores)[::-1]`` reverses them), and NaN or inverted
boxes are an error naming the volume and row (the published code counts a NaN overlap as a
false positive).
"""
from typing import Optional, Sequence

import numpy as np

from .froc import FROCResult, sensitivity_at, walk_ranking

FPS_3D = tuple(2.0**p for p in range(-3, 11))  # 0.125 .. 1024 FPs per volume
AVERAGE_FPS_3D = FPS_3D[:7]  # 0.125 .. 8
OVERLAPS = ('iou', 'iobb', 'iogt', 'iobbgt')
MODES = ('3d', 'p3d')


def _sizes(b: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    out = 1.0
    for a in axes:
        out = out * (b[..., a + 3] - b[..., a] + 1.0)
    return out


def overlap(det: np.ndarray, gt: np.ndarray, metric: str = 'iobb', mode: str = '3d') -> np.ndarray:
    """Overlap of boxes ``det (..., 6)`` and ``gt (..., 6)`` (broadcast): ``metric`` in
    :data:`OVERLAPS`, in 3D or, ``mode='p3d'``, in 2D where the detection's z-range holds the
    GT's slice (0 elsewhere)."""
    metric, mode = _check(metric, OVERLAPS, 'overlap'), _check(mode, MODES, 'mode')
    axes = (0, 1, 2) if mode == '3d' else (0, 1)
    inter = 1.0
    for a in axes:
        lo = np.maximum(det[..., a], gt[..., a])
        hi = np.minimum(det[..., a + 3], gt[..., a + 3])
        inter = inter * np.maximum(hi - lo + 1.0, 0.0)
    if mode == 'p3d':
        inter = inter * ((det[..., 2] <= gt[..., 2]) & (gt[..., 2] <= det[..., 5]))
    det_size, gt_size = _sizes(det, axes), _sizes(gt, axes)
    if metric == 'iou':
        return inter / (det_size + gt_size - inter)
    if metric == 'iobb':
        return inter / det_size
    if metric == 'iogt':
        return inter / gt_size
    return np.maximum(inter / det_size, inter / gt_size)


def _check(value: str, allowed: Sequence[str], what: str) -> str:
    v = str(value).lower()
    if v not in allowed:
        raise ValueError(f'{what} must be one of {", ".join(allowed)}, got {value!r}')
    return v


def check_boxes_3d(boxes, cols: int, what: str, volume, mode: str = '3d') -> np.ndarray:
    """``boxes`` as a float ``(n, cols)`` array (6 GT numbers, 7 with a score), refusing NaN,
    infinite or inverted boxes (and, in P3D, GT on more than one slice) with a message naming
    ``what``, the volume and the row."""
    a = np.asarray(boxes, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, cols))
    if a.ndim != 2 or a.shape[1] != cols:
        raise ValueError(f'{what} of volume {volume!r}: expected an (n, {cols}) array '
                         f'[x1, y1, z1, x2, y2, z2{", score" if cols == 7 else ""}], got shape '
                         f'{a.shape}')
    for r, row in enumerate(a):
        if not np.isfinite(row).all():
            raise ValueError(f'{what} of volume {volume!r}, row {r}: not a finite number: '
                             f'{row.tolist()}')
        if (row[3:6] < row[0:3]).any():
            raise ValueError(f'{what} of volume {volume!r}, row {r}: inverted box (x2 < x1, '
                             f'y2 < y1 or z2 < z1): {row[:6].tolist()}')
        if mode == 'p3d' and cols == 6 and row[2] != row[5]:
            raise ValueError(f'{what} of volume {volume!r}, row {r}: P3D ground truth lies on '
                             f'one slice (z1 == z2), got z {row[2]:g}..{row[5]:g}')
    return a


def froc_curve_3d(detections: Sequence,
                  gt_boxes: Sequence,
                  metric: str = 'iobb',
                  thr: float = 0.3,
                  mode: str = '3d',
                  names: Optional[Sequence] = None):
    """``(FPs per volume, sensitivity)`` after each detection of the global ranking, from the
    origin. ``detections``: one ``(n_i, 7)`` array per volume, ``gt_boxes`` one ``(m_i, 6)``;
    ``names`` name the volumes in errors (default their positions)."""
    metric, mode = _check(metric, OVERLAPS, 'overlap'), _check(mode, MODES, 'mode')
    if not 0 < thr <= 1:
        raise ValueError(f'the overlap threshold must be in (0, 1], got {thr}')
    names = list(range(len(gt_boxes))) if names is None else list(names)
    if not len(detections) == len(gt_boxes) == len(names):
        raise ValueError(f'{len(detections)} detection lists for {len(gt_boxes)} GT lists '
                         f'({len(names)} names): give one entry per volume to each')
    dets = [check_boxes_3d(d, 7, 'detections', n) for d, n in zip(detections, names)]
    gts = [check_boxes_3d(g, 6, 'ground truth', n, mode) for g, n in zip(gt_boxes, names)]
    return walk_ranking(dets, gts, 6, lambda d, g: overlap(d, g, metric, mode) >= thr)


def compute_froc_3d(detections: Sequence,
                    gt_boxes: Sequence,
                    fps: Sequence[float] = FPS_3D,
                    metric: str = 'iobb',
                    thr: float = 0.3,
                    mode: str = '3d',
                    average_fps: Sequence[float] = AVERAGE_FPS_3D,
                    names: Optional[Sequence] = None) -> FROCResult:
    """The 3D lesion-level FROC: sensitivity at ``fps`` FPs per volume and the mean over
    ``average_fps`` (each must be one of ``fps``). Arguments as :func:`froc_curve_3d`."""
    missing = [f for f in average_fps if f not in fps]
    if missing:
        raise ValueError(f'average_fps {missing} are not among the operating points {list(fps)}')
    curve_fps, curve_sens = froc_curve_3d(detections, gt_boxes, metric, thr, mode, names)
    sens = sensitivity_at(curve_fps, curve_sens, fps)
    average = float(np.mean([s for f, s in zip(fps, sens) if f in average_fps]))
    return FROCResult(
        tuple(fps),
        sens,
        average,
        curve_fps,
        curve_sens,
        len(gt_boxes),
        int(sum(len(np.asarray(g).reshape(-1, 6)) for g in gt_boxes)),
        average_fps=tuple(average_fps),
        unit='volume')
