"""Atomic file writing and COCO RLE encoding."""
import os
import os.path as osp
from typing import Callable, Optional, TextIO

import numpy as np
from pycocotools import mask as mask_utils


def atomic_write(path: str, write: Callable[[TextIO], None], newline: Optional[str] = None) -> None:
    """Write a text file through ``write(f)`` into a temporary file beside ``path``, then rename
    it over ``path``: readers see the old file or the complete new one, never a partial one."""
    tmp = f'{path}.tmp-{os.getpid()}'
    try:
        with open(tmp, 'w', newline=newline) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def mask_to_rle(mask: np.ndarray) -> dict:
    """A binary ``(H, W)`` mask as a JSON-ready COCO RLE (``counts`` as str)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle
