"""DeepLesion's box convention and its conversions, in one place.

Three forms of the same box travel through acsdet:

- **inclusive pixel box** ``[x1, y1, x2, y2]``, 0-based: ``DL_info.csv``'s ``Bounding_boxes``
  minus 1 (the file is 1-based). ``x2`` is the last column *inside* the box, so the box is
  ``x2 - x1 + 1`` pixels wide. The official FROC protocol (3DCE / MULAN / AlignShift) scores these
  with the +1-pixel IoU, and plain-JSON detections for ``tools/froc_eval.py`` use it.
- **COCO** ``[x, y, w, h]`` with ``w = x2 - x1 + 1``: what the converter writes.
- **continuous** ``[x1, y1, x2, y2]`` with ``x2`` the right *edge* (inclusive ``x2`` + 1):
  MMDetection's boxes (datasets, transforms, predictions).

The +1-pixel IoU of two inclusive boxes equals the plain IoU of their continuous forms, so the
conversions below change no score; getting one of them wrong shrinks every lesion by a pixel.
"""
from typing import Sequence

import numpy as np

#: Written into the converter's COCO ``info`` so that readers can tell the convention apart from
#: files of acsdet 0.1, whose ``w = x2 - x1`` made every box one pixel too small.
COCO_BOX_FORMAT = 'xywh; w = x2 - x1 + 1 of the inclusive 0-based DL_info.csv box'


def inclusive_to_coco(box: Sequence[float]) -> list:
    """Inclusive ``[x1, y1, x2, y2]`` -> COCO ``[x, y, w, h]`` (``w = x2 - x1 + 1``)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1 + 1.0, y2 - y1 + 1.0]


def coco_to_continuous(bbox: Sequence[float]) -> list:
    """COCO ``[x, y, w, h]`` -> continuous ``[x1, y1, x1 + w, y1 + h]`` (MMDetection's form)."""
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]


def continuous_to_inclusive(boxes) -> np.ndarray:
    """Continuous boxes ``(..., 4)`` -> inclusive pixel boxes (``x2 - 1``, ``y2 - 1``), float64."""
    out = np.array(boxes, dtype=np.float64)
    out[..., 2:4] -= 1.0
    return out


def inclusive_to_continuous(boxes) -> np.ndarray:
    """Inclusive pixel boxes ``(..., 4)`` -> continuous boxes (``x2 + 1``, ``y2 + 1``), float64."""
    out = np.array(boxes, dtype=np.float64)
    out[..., 2:4] += 1.0
    return out


def iou_plus1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``[x1, y1, x2, y2]`` boxes (last axis) with the +1-pixel convention, broadcasting:
    ``iou_plus1(boxes[:, None], gts[None])`` is the ``(n, m)`` pairwise matrix."""
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    with np.errstate(divide='ignore', invalid='ignore'):
        return inter / (area_a + area_b - inter)
