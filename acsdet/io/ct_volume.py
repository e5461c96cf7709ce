"""Reading a patient's CT: DICOM series, enhanced CT, NIfTI / NRRD / MetaImage files, DeepLesion
PNG series.

:func:`read_ct` returns a :class:`~acsdet.io.volume.CTVolume`: HU voxels ``(Z, Y, X)`` as axial
slices in DeepLesion's order (index axes towards the patient's left, posterior and feet, see
:mod:`acsdet.io.volume`), whatever the file's storage orientation. SimpleITK does the reading
(GDCM for DICOM) and the reorientation (``DICOMOrient``); acsdet keeps the map back to the file's
own voxel indices and to physical LPS millimetres, so results can be reported in both and label
maps written in the input's exact geometry. NIfTI files are checked for truncation and a zero
voxel size first (:mod:`acsdet.io.nifti`), which ITK lets through.
"""
import os
import os.path as osp
import re
from typing import Optional

import numpy as np

from ..deeplesion.info import series_geometry
from ..deeplesion.png import decode_slice
from .dicom import is_dicom_file, read_dicom_folder, read_enhanced_ct
from .nifti import check_nifti
from .volume import (ORIENTATION, CTReadError, CTVolume, check_slice_positions, from_image,
                     input_key, sitk, volume_to_image)

__all__ = [
    'CTReadError', 'CTVolume', 'ORIENTATION', 'case_name', 'input_key', 'read_ct', 'volume_to_image'
]

#: The single-file volume formats by extension (read by ITK).
_FORMATS = {
    '.nii': 'NIfTI',
    '.nii.gz': 'NIfTI',
    '.nrrd': 'NRRD',
    '.nhdr': 'NRRD',
    '.mha': 'MetaImage',
    '.mhd': 'MetaImage'
}
NIFTI_LIKE = tuple(_FORMATS)


def _ext(path: str) -> str:
    low = path.lower()
    return next((e for e in sorted(NIFTI_LIKE, key=len, reverse=True) if low.endswith(e)), '')


def case_name(path: str) -> str:
    """The base name of an input, without its image extension: the case folder's name."""
    base = osp.basename(osp.normpath(path))
    ext = _ext(base) or ('.dcm' if base.lower().endswith('.dcm') else '')
    return base[:-len(ext)] if ext else base


def _read_file(path: str) -> CTVolume:
    ext = _ext(path)
    if ext in ('.nii', '.nii.gz'):
        check_nifti(path)
    try:
        img = sitk().ReadImage(path)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
        why = lines[-1] if lines else 'unknown error'
        if 'No such file or directory' in why or 'Unable to determine ImageIO' in why:
            why = (f'not a readable {_FORMATS[ext]} file: its header or data is damaged or '
                   'incomplete' +
                   (', or its data file is missing' if ext in ('.mhd', '.nhdr') else ''))
        raise CTReadError(f'{path}: unreadable ({why[:200]})') from None
    return from_image(img, f'{path}', case_name(path))


_PNG_NAME = re.compile(r'^(\d+)\.png$')


def _positive(value, what: str, folder: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float('nan')
    if not np.isfinite(v) or v <= 0:
        raise CTReadError(f'{folder}: {what} {value!r} mm: must be a finite positive number')
    return v


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
            raise CTReadError(f'{folder}: a DeepLesion PNG series needs --spacing and '
                              '--slice-interval, or --dl-info DL_info.csv to look them up')
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


def read_ct(path: str,
            series: Optional[str] = None,
            spacing: Optional[float] = None,
            slice_interval: Optional[float] = None,
            dl_info: Optional[str] = None) -> CTVolume:
    """Read a CT from a DICOM folder or enhanced-CT file, a NIfTI / NRRD / MetaImage file or a
    DeepLesion PNG series folder (``spacing``/``slice_interval`` in mm, or looked up in
    ``dl_info``).

    Raises :class:`CTReadError` (a ``ValueError``) with a one-line message naming the input.
    """
    vol = _read(path, series, spacing, slice_interval, dl_info)
    vol.input_key = input_key(path, series)
    return vol


def _read(path, series, spacing, slice_interval, dl_info) -> CTVolume:
    if not osp.exists(path):
        raise CTReadError(f'{path}: no such file or folder')
    if osp.isdir(path):
        if any(_PNG_NAME.match(n) for n in os.listdir(path)):
            return _read_png_series(path, spacing, slice_interval, dl_info)
        return read_dicom_folder(path, series)
    if _ext(path):
        return _read_file(path)
    if is_dicom_file(path):
        return read_enhanced_ct(path)
    raise CTReadError(f'{path}: unsupported file type (use a DICOM folder or enhanced-CT file, '
                      f'{", ".join(NIFTI_LIKE)}, or a DeepLesion PNG folder)')
