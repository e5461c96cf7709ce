"""DeepLesion's slices: 16-bit grey PNGs holding HU + 32768 (read with OpenCV)."""
import os.path as osp
import struct
from typing import Tuple

import cv2
import numpy as np

#: A stored value minus this is HU.
HU_OFFSET = 32768

_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def png_shape(path: str) -> Tuple[int, int]:
    """``(height, width)`` of a PNG from its header (24 bytes read, nothing decoded).

    Raises ``OSError`` naming the file when it is missing or not a PNG.
    """
    try:
        with open(path, 'rb') as f:
            head = f.read(24)
    except FileNotFoundError:
        raise FileNotFoundError(f'missing PNG {path}') from None
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b'IHDR':
        raise OSError(f'unreadable PNG {path}: no PNG header')
    width, height = struct.unpack('>II', head[16:24])
    return height, width


def decode_slice(path: str) -> np.ndarray:
    """One DeepLesion PNG (uint16 = HU + 32768) as int16 HU ``(H, W)``.

    Raises ``FileNotFoundError`` (missing) or ``OSError`` (unreadable) or ``ValueError`` (not a
    16-bit grey PNG), each naming the file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'missing PNG {path}')
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise OSError(f'unreadable PNG {path}')
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f'{path}: expected a 16-bit grey PNG, got {raw.dtype} {raw.shape}')
    raw ^= np.uint16(0x8000)  # u - 32768 as two's complement, in place
    return raw.view(np.int16)
