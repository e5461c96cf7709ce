"""Atomic file writing and COCO RLE encoding."""
import os
import os.path as osp
import uuid
from typing import IO, Callable, Optional

import numpy as np
from pycocotools import mask as mask_utils


def atomic_write(path: str,
                 write: Callable[[IO], None],
                 newline: Optional[str] = None,
                 binary: bool = False,
                 fsync: bool = True) -> None:
    """Write a file through ``write(f)`` into a uniquely named temporary file (``.tmp``) beside
    ``path``, then rename it over ``path``: readers see the old file or the complete new one,
    never a partial one, also with several writers. ``fsync=False`` skips flushing to disk (for
    caches, where losing the newest entry on power loss is harmless)."""
    tmp = f'{path}.{uuid.uuid4().hex}.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, 'wb' if binary else 'w', newline=None if binary else newline) as f:
            write(f)
            if fsync:
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
