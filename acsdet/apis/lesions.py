"""From per-slice detections to 3D lesions, and RECIST on a mask (pure numpy / OpenCV).

Grouping rule: two detections on *adjacent* processed slices belong to one lesion when their
boxes overlap with IoU >= ``iou_thr`` (0.5 by default); lesions are the connected components of
that relation (union-find). A slice without a matching detection ends a lesion: the same
structure seen again after a gap is a second lesion. Two detections on one slice are never
merged directly (only through neighbours, if both match the same box there).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..deeplesion.boxes import continuous_to_inclusive, iou_plus1


@dataclass
class SliceDetection:
    """One detection on one axial slice: continuous box ``[x1, y1, x2, y2]`` px, score, and the
    mask inside the box (``mask_box``: ``(y2 - y1, x2 - x1)`` bool on the rounded box) or None."""
    slice_index: int
    box: np.ndarray
    score: float
    mask_box: Optional[np.ndarray] = None
    mask_origin: Tuple[int, int] = (0, 0)  # (x, y) of mask_box[0, 0]

    def full_mask(self, shape: Tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape, bool)
        if self.mask_box is not None:
            x0, y0 = self.mask_origin
            h, w = self.mask_box.shape
            out[y0:y0 + h, x0:x0 + w] = self.mask_box[:shape[0] - y0, :shape[1] - x0]
        return out


@dataclass
class Lesion:
    """A 3D lesion: its member detections (one or more per slice) and the best one."""
    members: List[SliceDetection] = field(default_factory=list)

    @property
    def key(self) -> SliceDetection:
        return max(self.members, key=lambda d: d.score)

    @property
    def score(self) -> float:
        return self.key.score

    @property
    def slice_range(self) -> Tuple[int, int]:
        s = [d.slice_index for d in self.members]
        return min(s), max(s)

    def box_3d(self) -> np.ndarray:
        """``[x1, y1, z1, x2, y2, z2]``: continuous in x, y; inclusive slice indices in z."""
        b = np.array([d.box for d in self.members])
        z0, z1 = self.slice_range
        return np.array([b[:, 0].min(), b[:, 1].min(), z0, b[:, 2].max(), b[:, 3].max(), z1])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of continuous boxes ``(n, 4)`` and ``(m, 4)``: the +1-pixel IoU of their
    inclusive forms (:func:`~acsdet.deeplesion.boxes.iou_plus1`), 0 for empty boxes."""
    a = continuous_to_inclusive(np.reshape(a, (-1, 4)))
    b = continuous_to_inclusive(np.reshape(b, (-1, 4)))
    return np.nan_to_num(iou_plus1(a[:, None], b[None]))


def group_detections(detections: Sequence[SliceDetection], iou_thr: float = 0.5) -> List[Lesion]:
    """3D lesions from per-slice detections (the module's rule), by descending score."""
    dets = list(detections)
    parent = list(range(len(dets)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_slice: Dict[int, List[int]] = {}
    for i, d in enumerate(dets):
        by_slice.setdefault(d.slice_index, []).append(i)
    for k, idx in by_slice.items():
        nxt = by_slice.get(k + 1)
        if not nxt:
            continue
        iou = box_iou([dets[i].box for i in idx], [dets[j].box for j in nxt])
        for a, b in zip(*np.nonzero(iou >= iou_thr)):
            ra, rb = find(idx[a]), find(nxt[b])
            if ra != rb:
                parent[rb] = ra
    groups: Dict[int, Lesion] = {}
    for i, d in enumerate(dets):
        groups.setdefault(find(i), Lesion()).members.append(d)
    return sorted(groups.values(), key=lambda les: -les.score)


def _hull_width(hull_uv: np.ndarray, us: np.ndarray):
    """Length and end points (in u, v) of the convex polygon ``hull_uv``'s chords at u = ``us``."""
    a, b = hull_uv, np.roll(hull_uv, -1, axis=0)
    du = b[:, 0] - a[:, 0]
    with np.errstate(divide='ignore', invalid='ignore'):
        t = (us[:, None] - a[None, :, 0]) / du[None]
    ok = (t >= 0) & (t <= 1) & (du[None] != 0)
    v = a[None, :, 1] + t * (b[None, :, 1] - a[None, :, 1])
    lo = np.where(ok, v, np.inf).min(1)
    hi = np.where(ok, v, -np.inf).max(1)
    return hi - lo, lo, hi


def recist(mask: np.ndarray, spacing_xy: Tuple[float, float] = (1.0, 1.0)) -> Optional[dict]:
    """RECIST on a binary ``(H, W)`` mask, in mm: the longest diameter of the outline, then the
    longest diameter perpendicular to it.

    The outline is the convex hull of the pixel centres (in mm, with the pixel spacing
    ``(x, y)``), widened by one pixel (half a pixel each side, where the region's edge lies):
    within one pixel of the true axes of an ellipse at any angle and position. Returns
    ``dict(long_mm, short_mm, long_axis, short_axis)`` (axes as ``[[x, y], [x, y]]`` pixel
    positions on the hull) or None for an empty mask.
    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    sx, sy = spacing_xy
    pts = np.stack([xs * sx, ys * sy], 1).astype(np.float64)  # mm
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    d = np.linalg.norm(hull[:, None] - hull[None], axis=-1)
    i, j = np.unravel_index(np.argmax(d), d.shape)
    p1, p2 = hull[i], hull[j]
    length = float(d[i, j])
    u = (p2 - p1) / length if length > 0 else np.array([1.0, 0.0])
    v = np.array([-u[1], u[0]])
    pix_u = float(np.hypot(u[0] * sx, u[1] * sy))  # one pixel along u, in mm
    pix_v = float(np.hypot(v[0] * sx, v[1] * sy))
    width, ends = 0.0, (p1, p1)
    if len(hull) >= 3 and length > 0:
        uv = np.stack([(hull - p1) @ u, (hull - p1) @ v], 1)
        us = np.linspace(0, length, max(2, int(np.ceil(length / (0.1 * min(sx, sy)))) + 1))
        w, lo, hi = _hull_width(uv, us)
        k = int(np.argmax(w))
        if np.isfinite(w[k]):
            width = float(w[k])
            ends = (p1 + us[k] * u + lo[k] * v, p1 + us[k] * u + hi[k] * v)
    to_px = np.array([sx, sy])
    return dict(
        long_mm=length + pix_u,
        short_mm=width + pix_v,
        long_axis=(np.stack([p1, p2]) / to_px).tolist(),
        short_axis=(np.stack(ends) / to_px).tolist())
