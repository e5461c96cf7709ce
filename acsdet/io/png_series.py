"""DeepLesion PNG series folders (``<index>.png`` slices, 16-bit, HU + 32768) as CT volumes.

The geometry is not in the PNGs: pixel spacing and slice interval (mm) come as options or from
``DL_info.csv`` (``dl_info``). Slice ``i`` sits ``i x slice interval`` mm towards the feet
(DeepLesion's slice order).
"""
import os
import os.path as osp
import re
from typing import Optional

import numpy as np

from ..deeplesion.info import series_geometry
from ..deeplesion.png import decode_slice
from ..utils.errors import naming
from .ct_volume import CTReadError, CTVolume, check_slice_positions
from .readers import CTReader, register_ct_reader

_PNG_NAME = re.compile(r'^(\d+)\.png$')


def _positive(value, what: str, folder: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float('nan')
    if not np.isfinite(v) or v <= 0:
        raise CTReadError(f'{folder}: {what} {value!r} mm: must be a finite positive number')
    return v


def png_slice_numbers(folder: str) -> list:
    """The slice numbers of a DeepLesion series folder's ``<i>.png`` files, increasing (the
    order the reader stacks them in)."""
    return sorted(int(m.group(1)) for n in os.listdir(folder) for m in [_PNG_NAME.match(n)] if m)


def _read_png_series(folder: str, spacing: Optional[float], thickness: Optional[float],
                     dl_info: Optional[str]) -> CTVolume:
    """A DeepLesion series folder: slice ``i`` (``<i>.png``) sits ``i x thickness`` mm towards
    the feet (DeepLesion's slice order), so the volume's slice axis points inferior and the
    series' slice 0 is at S = 0 mm (DeepLesion keeps no patient position)."""
    names = sorted(
        (int(m.group(1)), n) for n in os.listdir(folder) for m in [_PNG_NAME.match(n)] if m)
    if not names:
        raise CTReadError(f'{folder}: no DeepLesion PNG slices (<index>.png)')
    if spacing is None or thickness is None:
        if dl_info is None:
            raise naming(
                CTReadError(f'{folder}: a DeepLesion PNG series needs {{spacing}} and '
                            '{slice_interval}, or {dl_info} DL_info.csv to look them up'),
                'spacing', 'slice_interval', 'dl_info')
        try:
            sp, th = series_geometry(dl_info, osp.basename(osp.normpath(folder)))
        except (OSError, ValueError) as e:
            raise CTReadError(str(e)) from None
        spacing = spacing if spacing is not None else sp
        thickness = thickness if thickness is not None else th
    spacing = _positive(spacing, 'pixel spacing', folder)
    thickness = _positive(thickness, 'slice interval', folder)
    slices = []
    for _, n in names:
        try:
            slices.append(decode_slice(osp.join(folder, n)))
        except (OSError, ValueError) as e:
            raise CTReadError(str(e)) from None
    shapes = {s.shape for s in slices}
    if len(shapes) > 1:
        raise CTReadError(f'{folder}: slices of different sizes {sorted(shapes)}')
    hu = np.stack(slices).astype(np.float32)
    z = np.array([i for i, _ in names], dtype=np.float64) * thickness
    notes = check_slice_positions(z, folder, [n for _, n in names])
    return CTVolume(
        hu=hu,
        spacing=(float(np.median(np.diff(z))) if len(z) > 1 else thickness, spacing, spacing),
        z_positions=z,
        origin=np.array([0.0, 0.0, -z[0]]),
        direction=np.diag([1.0, 1.0, -1.0]),  # towards L, P and the feet
        to_stored=((0, 1, 2), (False, False, False), (hu.shape[2], hu.shape[1], hu.shape[0])),
        reference=None,
        source=f'DeepLesion PNG series {folder}',
        name=osp.basename(osp.normpath(folder)),
        warnings=notes)


@register_ct_reader
class DeepLesionPNGReader(CTReader):
    """A DeepLesion series folder (``Images_png/<series>/<i>.png``)."""
    name = 'deeplesion-png'
    description = 'a DeepLesion PNG series folder'
    options = ('spacing', 'slice_interval', 'dl_info')
    priority = 10  # before the DICOM folder reader: a folder of <i>.png files is this format

    def accepts(self, path: str) -> bool:
        return osp.isdir(path) and any(_PNG_NAME.match(n) for n in os.listdir(path))

    def read(self,
             path: str,
             spacing: Optional[float] = None,
             slice_interval: Optional[float] = None,
             dl_info: Optional[str] = None) -> CTVolume:
        return _read_png_series(path, spacing, slice_interval, dl_info)
