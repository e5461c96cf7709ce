"""NIfTI checks ITK does not make: a truncated file and a zero voxel size.

ITK reads a ``.nii`` / ``.nii.gz`` whose voxel data ends early without an error (the missing
voxels come back as zeros), and substitutes 1 mm for a ``pixdim`` of 0. :func:`check_nifti` reads
the header (NIfTI-1 or NIfTI-2, either byte order), compares the data the header promises with
what the file holds (for ``.nii.gz`` the whole gzip stream is decompressed, so its end marker and
CRC are checked too) and refuses zero or non-finite voxel sizes.
"""
import gzip
import os
import struct
import zlib
from typing import Tuple

import numpy as np

from .ct_volume import CTReadError

_CHUNK = 1 << 24


def _open(path: str):
    return gzip.open(path, 'rb') if path.lower().endswith('.gz') else open(path, 'rb')


def read_nifti_header(path: str) -> Tuple[Tuple[int, ...], int, Tuple[float, ...], int]:
    """``(dims, bitpix, pixdims, vox_offset)`` of a NIfTI-1 or NIfTI-2 header."""
    try:
        with _open(path) as f:
            head = f.read(540)
    except (OSError, EOFError, zlib.error) as e:
        raise CTReadError(f'{path}: unreadable NIfTI header ({e})') from None
    for order in '<>':
        if len(head) >= 348 and struct.unpack(order + 'i', head[:4])[0] == 348:
            dim = struct.unpack(order + '8h', head[40:56])
            bitpix = struct.unpack(order + 'h', head[72:74])[0]
            pixdim = struct.unpack(order + '8f', head[76:108])
            vox_offset = int(struct.unpack(order + 'f', head[108:112])[0])
            break
        if len(head) >= 540 and struct.unpack(order + 'i', head[:4])[0] == 540:
            bitpix = struct.unpack(order + 'h', head[14:16])[0]
            dim = struct.unpack(order + '8q', head[16:80])
            pixdim = struct.unpack(order + '8d', head[104:168])
            vox_offset = struct.unpack(order + 'q', head[168:176])[0]
            break
    else:
        raise CTReadError(f'{path}: not a NIfTI file (no NIfTI-1 or NIfTI-2 header)')
    ndim = dim[0]
    if not 1 <= ndim <= 7 or any(d < 1 for d in dim[1:ndim + 1]) or bitpix <= 0:
        raise CTReadError(f'{path}: damaged NIfTI header (dim {list(dim)}, bitpix {bitpix})')
    return tuple(int(d) for d in dim[1:ndim + 1]), int(bitpix), tuple(pixdim[1:ndim + 1]), \
        max(int(vox_offset), 348)


def _stored_bytes(path: str) -> int:
    """Bytes of the file's content (decompressed for ``.gz``); a truncated or damaged gzip
    stream is an error."""
    if not path.lower().endswith('.gz'):
        return os.path.getsize(path)
    n = 0
    try:
        with gzip.open(path, 'rb') as f:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    return n
                n += len(chunk)
    except EOFError:
        raise CTReadError(f'{path}: truncated (the gzip stream ends before its end marker, after '
                          f'at least {n} bytes): the file was not written or copied completely') \
            from None
    except (OSError, zlib.error) as e:
        raise CTReadError(f'{path}: damaged gzip stream ({e})') from None


def check_nifti(path: str) -> None:
    """Raise :class:`CTReadError` naming ``path`` if its voxel data is shorter than its header
    says, or its voxel size is zero or not finite."""
    dims, bitpix, pixdim, vox_offset = read_nifti_header(path)
    need = vox_offset + int(np.prod(dims[:3], dtype=np.int64)) * int(
        np.prod(dims[3:], dtype=np.int64)) * bitpix // 8
    have = _stored_bytes(path)
    if have < need:
        raise CTReadError(f'{path}: truncated: the header promises {need} bytes of header and '
                          f'voxels ({" x ".join(map(str, dims))} x {bitpix // 8} bytes), the file '
                          f'holds {have}')
    spatial = pixdim[:min(3, len(dims))]
    if not all(np.isfinite(v) and v != 0 for v in spatial):
        raise CTReadError(f'{path}: voxel size (pixdim) {[float(v) for v in spatial]} mm: a zero '
                          'or non-finite size is unknown geometry (ITK would assume 1 mm)')
