"""The official DeepLesion FROC protocol (3DCE / MULAN / AlignShift), vectorised, pure numpy.

Protocol (the evaluation code of 3DCE, MULAN and AlignShift; acsdet follows MULAN where they
differ):

1. Pool the detections ``[x1, y1, x2, y2, score]`` of all evaluated images and sort them by score,
   descending, globally (a stable sort: ties keep image order, then detection order).
2. Walk the list. A detection whose image has no GT, or whose best IoU with its image's GT is
   below ``iou_thr``, is a false positive. Otherwise every not-yet-hit GT with IoU >= ``iou_thr``
   becomes hit (one detection may hit several lesions); a detection that only overlaps lesions
   already hit is neither a hit nor a false positive.
3. IoU uses the +1-pixel convention: width = x2 - x1 + 1.
4. Sensitivity = hits / GT lesions; FPs per image = false positives / images.
5. Sensitivity at an FP rate by linear interpolation of the curve; beyond the curve's last point,
   its last sensitivity (MULAN/AlignShift; 3DCE extrapolates linearly instead). Where the curve
   sits at an FP rate exactly while hits accrue (a tie: integer FP counts), the value is the last
   point of the tie, i.e. every hit made before the next false positive. That is what MULAN's
   ``scipy.interpolate.interp1d(fp, sens)`` returns (scipy delegates it to ``np.interp``).
   3DCE's ``interp1d(..., fill_value='extrapolate')`` is not delegated and takes the *first*
   point of a tie (and extrapolates past the end), a difference of up to a few hits per
   operating point. The curve starts at the origin (no detection, no FP), so an FP rate below
   its first point interpolates from (0, 0) where MULAN's code would raise.

The walk is computed without a Python loop: each lesion is hit by the first (best-ranked)
detection overlapping it, so hits after k detections = lesions whose first overlapping rank < k.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Optional, Sequence

import numpy as np

from ..deeplesion.boxes import iou_plus1

DEFAULT_FPS = (0.5, 1, 2, 4, 8, 16)
AVERAGE_FPS = (0.5, 1, 2, 4)


@dataclass
class FROCResult:
    """Sensitivities at ``fps`` FPs per image, their 0.5-4 average, and the full curve."""
    fps: tuple
    sensitivities: np.ndarray
    average: float
    curve_fps: np.ndarray = field(repr=False)
    curve_sensitivities: np.ndarray = field(repr=False)
    num_images: int = 0
    num_lesions: int = 0
    average_fps: tuple = AVERAGE_FPS
    unit: str = 'image'  # what the FPs are counted per: 'image' (2D) or 'volume' (3D)

    def as_dict(self, prefix: str = '') -> Dict[str, float]:
        out = {
            f'{prefix}sens@{_fmt_fp(fp)}': float(s)
            for fp, s in zip(self.fps, self.sensitivities)
        }
        out[f'{prefix}avg'] = float(self.average)
        return out

    def table(self, title: str = 'FROC') -> str:
        """The paper-style one-row table, in %."""
        span = f'{_fmt_fp(self.average_fps[0])}-{_fmt_fp(self.average_fps[-1])}'
        head = [f'{_fmt_fp(fp)}' for fp in self.fps] + [f'Avg({span})']
        vals = [f'{100 * s:.2f}' for s in self.sensitivities] + [f'{100 * self.average:.2f}']
        width = max(8, *(len(h) for h in head))
        lines = [
            f'{title}: sensitivity (%) at FPs per {self.unit} ({self.num_images} {self.unit}s, '
            f'{self.num_lesions} lesions)', ' | '.join(h.rjust(width) for h in head),
            ' | '.join(v.rjust(width) for v in vals)
        ]
        return '\n'.join(lines)


def _fmt_fp(fp) -> str:
    return f'{fp:g}'


def _as_boxes(a, cols: int, what: str, i: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, cols))
    if a.ndim != 2 or a.shape[1] < cols:
        raise ValueError(f'{what}[{i}] must be an (n, {cols}) array, got shape {a.shape}')
    return a[:, :cols]


def froc_curve(detections: Sequence, gt_boxes: Sequence, iou_thr: float = 0.5):
    """FPs per image and sensitivity after each detection of the global ranking.

    Returns ``(fps_per_image, sensitivity)``, each of length (number of detections + 1), starting
    at the origin.
    """
    return walk_ranking(detections, gt_boxes, 4, lambda det, gt: iou_plus1(det, gt) >= iou_thr)


def walk_ranking(detections: Sequence, gt_boxes: Sequence, cols: int,
                 hits: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    """The protocol's walk (steps 1, 2 and 4) for boxes of ``cols`` numbers: ``detections`` one
    ``(n_i, cols + 1)`` array per image or volume (the score last), ``gt_boxes`` one
    ``(m_i, cols)`` array; ``hits(det (T, 1, cols), gt (T, M, cols)) -> (T, M)`` bool says
    which GT each detection overlaps enough. Returns ``(FPs per image, sensitivity)`` after
    each detection of the ranking, from the origin."""
    if len(detections) != len(gt_boxes):
        raise ValueError(f'{len(detections)} detection lists for {len(gt_boxes)} GT lists: '
                         'give one entry per evaluated image to both')
    n_img = len(gt_boxes)
    dets = [_as_boxes(d, cols + 1, 'detections', i) for i, d in enumerate(detections)]
    gts = [_as_boxes(g, cols, 'gt_boxes', i) for i, g in enumerate(gt_boxes)]
    n_det = np.array([len(d) for d in dets])
    n_gt = np.array([len(g) for g in gts])
    total_gt = int(n_gt.sum())
    if n_img == 0:
        raise ValueError('no images to evaluate')
    if total_gt == 0:
        raise ValueError('no GT lesions: sensitivity is undefined')
    total_det = int(n_det.sum())
    if total_det == 0:
        return np.zeros(1), np.zeros(1)

    all_dets = np.concatenate(dets)
    img_of_det = np.repeat(np.arange(n_img), n_det)
    order = np.argsort(-all_dets[:, cols], kind='stable')
    rank = np.empty(total_det, dtype=np.int64)
    rank[order] = np.arange(total_det)

    # overlap of every detection with every GT of its own image, padded to the largest GT count
    max_gt = int(n_gt.max())
    gt_pad = np.zeros((n_img, max(max_gt, 1), cols))
    valid = np.zeros((n_img, max(max_gt, 1)), dtype=bool)
    for i, g in enumerate(gts):
        gt_pad[i, :len(g)] = g
        valid[i, :len(g)] = True
    overlap = hits(all_dets[:, None, :cols], gt_pad[img_of_det]) & valid[img_of_det]

    is_fp = ~overlap.any(axis=1)
    det_idx, gt_col = np.nonzero(overlap)
    gt_offset = np.concatenate([[0], np.cumsum(n_gt)[:-1]])
    first_hit = np.full(total_gt, total_det, dtype=np.int64)  # rank of the first overlapping det
    np.minimum.at(first_hit, gt_offset[img_of_det[det_idx]] + gt_col, rank[det_idx])
    hits_at = np.bincount(first_hit[first_hit < total_det], minlength=total_det)
    tp = np.cumsum(hits_at)
    fp = np.cumsum(is_fp[order])
    return (np.concatenate([[0.], fp / n_img]), np.concatenate([[0.], tp / total_gt]))


def sensitivity_at(curve_fps: np.ndarray, curve_sens: np.ndarray,
                   fps: Sequence[float]) -> np.ndarray:
    """Linear interpolation of the curve at ``fps`` (the last point of a tie); beyond its end,
    its last sensitivity."""
    out = np.empty(len(fps))
    for k, f in enumerate(fps):
        i = int(np.searchsorted(curve_fps, f, side='right')) - 1  # last point with fps <= f
        if i >= len(curve_fps) - 1:
            out[k] = curve_sens[-1]
        elif i < 0:
            out[k] = curve_sens[0]
        else:
            x0, x1 = curve_fps[i], curve_fps[i + 1]
            y0, y1 = curve_sens[i], curve_sens[i + 1]
            out[k] = y0 + (y1 - y0) * (f - x0) / (x1 - x0)
    return out


def compute_froc(detections: Sequence,
                 gt_boxes: Sequence,
                 fps: Sequence[float] = DEFAULT_FPS,
                 iou_thr: float = 0.5) -> FROCResult:
    """The official DeepLesion FROC.

    Args:
        detections: one ``(n_i, 5)`` array ``[x1, y1, x2, y2, score]`` per evaluated image.
        gt_boxes: one ``(m_i, 4)`` array ``[x1, y1, x2, y2]`` per image (same order).
        fps: the FP-per-image operating points.
        iou_thr: IoU (+1-pixel convention) for a hit.
    """
    curve_fps, curve_sens = froc_curve(detections, gt_boxes, iou_thr)
    sens = sensitivity_at(curve_fps, curve_sens, fps)
    avg_idx = [i for i, f in enumerate(fps) if f in AVERAGE_FPS]
    average = float(np.mean(sens[avg_idx])) if avg_idx else float('nan')
    return FROCResult(
        tuple(fps), sens, average, curve_fps, curve_sens, len(gt_boxes),
        int(sum(len(np.asarray(g).reshape(-1, 4)) for g in gt_boxes)))


def compute_froc_by_group(detections: Sequence,
                          gt_boxes: Sequence,
                          gt_groups: Sequence,
                          fps: Sequence[float] = DEFAULT_FPS,
                          iou_thr: float = 0.5,
                          groups: Optional[List[Hashable]] = None) -> Dict[Hashable, FROCResult]:
    """FROC per subset of lesions, the reference way: keep only the subset's GT, keep every
    detection and every image (detections on other lesions then count as false positives).

    ``gt_groups[i][j]`` is the group (lesion type, size bucket, ...) of ``gt_boxes[i][j]``.
    """
    labels = [np.asarray(g, dtype=object).reshape(-1) for g in gt_groups]
    if groups is None:
        groups = sorted({x for lab in labels for x in lab}, key=str)
    out = {}
    for grp in groups:
        sub = [
            np.asarray(g, dtype=np.float64).reshape(-1, 4)[lab == grp]
            for g, lab in zip(gt_boxes, labels)
        ]
        if sum(len(s) for s in sub):
            out[grp] = compute_froc(detections, sub, fps, iou_thr)
    return out


def size_bucket(long_diameter_mm: float, edges: Sequence[float] = (10, 30)) -> str:
    """Size group of a lesion by its long diameter: '<10mm', '10-30mm', '>=30mm' by default."""
    lo, hi = edges
    if long_diameter_mm < lo:
        return f'<{lo:g}mm'
    if long_diameter_mm < hi:
        return f'{lo:g}-{hi:g}mm'
    return f'>={hi:g}mm'


def thickness_bucket(slice_interval_mm: float, edges: Sequence[float] = (2.5, )) -> str:
    """Slice-thickness group: '<=2.5mm' (thin) or '>2.5mm' (thick) by default."""
    for e in edges:
        if slice_interval_mm <= e:
            return f'<={e:g}mm'
    return f'>{edges[-1]:g}mm'
