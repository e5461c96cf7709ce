"""Weak lesion masks from RECIST: GrabCut (AlignShift's recipe, fixed) and the RECIST ellipse.

GrabCut is initialised on a crop around the box: background everywhere, the box probable
foreground, the quadrilateral through the four RECIST endpoints (long-1, short-1, long-2,
short-2) definite foreground; 3 iterations; the mask is foreground plus probable foreground,
kept to the connected part that holds the RECIST cross. The image is windowed to 8 bits with
clipping (AlignShift subtracts 50 before the uint8 cast, which wraps air and lung to bright). A
failed or degenerate GrabCut (an error, a mask filling the whole box, or one smaller than the
RECIST quadrilateral) falls back to the ellipse through the RECIST endpoints (MULAN's weak mask).
All coordinates are 0-based pixels (x, y).
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from ..utils.hu import SOFT_TISSUE_WINDOW, window_to_uint8


def recist_quad(recist: np.ndarray) -> np.ndarray:
    """The quadrilateral long-1, short-1, long-2, short-2 as int32 ``(4, 2)`` (x, y)."""
    return np.round(recist[[0, 2, 1, 3]]).astype(np.int32)


def ellipse_mask(recist: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """The ellipse whose axes are the RECIST diameters (centred on the long axis' midpoint)."""
    p1, p2, q1, q2 = recist
    centre = (p1 + p2) / 2
    long_len = np.linalg.norm(p2 - p1)
    short_len = np.linalg.norm(q2 - q1)
    angle = np.degrees(np.arctan2(p2[1] - p1[1], p2[0] - p1[0]))
    mask = np.zeros(shape, np.uint8)
    # cv2 draws on the integer grid; sub-pixel precision through the shift argument
    s = 4
    cv2.ellipse(mask, (int(round(centre[0] * 2**s)), int(round(centre[1] * 2**s))),
                (max(1, int(round(long_len / 2 * 2**s))), max(1, int(round(short_len / 2 * 2**s)))),
                angle, 0, 360, 1, -1, cv2.LINE_8, s)
    cv2.fillConvexPoly(mask, recist_quad(recist), 1)  # never smaller than the RECIST cross
    return mask.astype(bool)


def grabcut_mask(img8: np.ndarray,
                 box: np.ndarray,
                 recist: np.ndarray,
                 margin: Optional[int] = None,
                 iterations: int = 3,
                 seed: int = 0) -> Optional[np.ndarray]:
    """GrabCut weak mask (full-image bool array) or None when GrabCut fails or degenerates.

    ``img8``: uint8 grey (H, W) or BGR (H, W, 3); ``box``: x1, y1, x2, y2; ``recist``: (4, 2).
    """
    h, w = img8.shape[:2]
    x1, y1, x2, y2 = [int(round(v)) for v in box]
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w - 1, x2), min(h - 1, y2)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    if margin is None:
        margin = max(10, (max(x2 - x1, y2 - y1) + 1) // 2)
    cx1, cy1 = max(0, x1 - margin), max(0, y1 - margin)
    cx2, cy2 = min(w, x2 + margin + 1), min(h, y2 + margin + 1)
    crop = img8[cy1:cy2, cx1:cx2]
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    init = np.full(crop.shape[:2], cv2.GC_BGD, np.uint8)
    init[y1 - cy1:y2 - cy1 + 1, x1 - cx1:x2 - cx1 + 1] = cv2.GC_PR_FGD
    quad = recist_quad(recist) - np.array([cx1, cy1], np.int32)
    cv2.fillConvexPoly(init, quad, cv2.GC_FGD)
    quad_area = int((init == cv2.GC_FGD).sum())
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(seed)
    try:
        cv2.grabCut(
            np.ascontiguousarray(crop), init, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    fg = ((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD)).astype(np.uint8)
    n, labels = cv2.connectedComponents(fg, connectivity=8)
    if n > 2:  # keep the components touching the RECIST quadrilateral
        quad_mask = np.zeros_like(fg)
        cv2.fillConvexPoly(quad_mask, quad, 1)
        keep = np.unique(labels[(quad_mask > 0) & (fg > 0)])
        fg = np.isin(labels, keep[keep > 0]).astype(np.uint8)
    area = int(fg.sum())
    box_area = (x2 - x1 + 1) * (y2 - y1 + 1)
    if area < quad_area or area >= 0.95 * box_area:
        return None
    out = np.zeros((h, w), bool)
    out[cy1:cy2, cx1:cx2] = fg > 0
    return out


def weak_mask(hu: np.ndarray,
              box: np.ndarray,
              recist: np.ndarray,
              window: Sequence[float] = SOFT_TISSUE_WINDOW) -> Tuple[np.ndarray, str]:
    """``(mask, method)``: GrabCut on the ``window``-ed slice, else the RECIST ellipse."""
    img8 = window_to_uint8(hu, window)
    mask = grabcut_mask(img8, box, recist)
    if mask is not None:
        return mask, 'grabcut'
    return ellipse_mask(recist, hu.shape[:2]), 'ellipse'
