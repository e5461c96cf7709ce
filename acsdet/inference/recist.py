"""RECIST diameters of a lesion's mask on one slice (numpy / OpenCV)."""
from typing import Optional, Tuple

import cv2
import numpy as np


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
