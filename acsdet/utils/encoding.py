"""Values as files hold them: strict JSON (no NaN) and COCO RLE masks."""
import numpy as np
from pycocotools import mask as mask_utils


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, inf) replaced by None, so that it can be
    written as strict JSON (``allow_nan=False``): ``NaN`` is not JSON and many readers fail."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None
    return obj


def mask_to_rle(mask: np.ndarray) -> dict:
    """A binary ``(H, W)`` mask as a JSON-ready COCO RLE (``counts`` as str)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle
