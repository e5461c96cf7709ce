"""Reading a patient's CT: DICOM series, NIfTI / NRRD / MetaImage files, DeepLesion PNG series.

:func:`read_ct` returns a :class:`CTVolume`: HU voxels ``(Z, Y, X)`` as axial slices in the
radiological convention DeepLesion uses (column index towards the patient's left, so the
patient's right is on the image's left; row index towards posterior, so anterior is up; slice
index towards superior), i.e. index axes along LPS, whatever the file's storage orientation.
SimpleITK does the reading (GDCM for DICOM: file order, RescaleSlope/Intercept, series UIDs) and
the reorientation (``DICOMOrient``); acsdet keeps the map back to the file's own voxel indices and
to physical LPS millimetres, so results can be reported in both and label maps written in the
input's exact geometry.
"""
import csv
import glob
import os
import os.path as osp
import re
import warnings
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..datasets.slices import decode_slice

NIFTI_LIKE = ('.nii', '.nii.gz', '.nrrd', '.nhdr', '.mha', '.mhd')
#: Relative spread of slice gaps above which a series is "inconsistently spaced".
SPACING_TOLERANCE = 0.05


class CTReadError(ValueError):
    """A CT input that cannot be read; the message names the file or folder."""


@dataclass
class CTVolume:
    """A CT as LPS-ordered axial slices.

    Attributes:
        hu: ``(Z, Y, X)`` float32 HU.
        spacing: ``(z, y, x)`` mm (z: the mean slice gap).
        z_positions: ``(Z,)`` mm of each slice along its normal (the real positions: DICOM series
            with uneven gaps keep them).
        origin: LPS mm of voxel ``(0, 0, 0)``; ``direction``: ``(3, 3)`` direction cosines, column
            ``i`` is the LPS direction of index axis ``i`` (x, y, z).
        to_stored: ``(perm, flip, shape)``: stored index axis ``perm[i]`` is this volume's axis
            ``i`` (x, y, z), reversed where ``flip[i]``; ``shape`` the stored ``(x, y, z)`` size.
        reference: the image as read (``SimpleITK.Image``) for label maps in its geometry, or
            None for PNG series (written with this volume's geometry).
        source: what was read (format and path); ``name``: a name for the case.
    """
    hu: np.ndarray
    spacing: Tuple[float, float, float]
    z_positions: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    to_stored: Tuple[Tuple[int, int, int], Tuple[bool, bool, bool], Tuple[int, int, int]]
    reference: Optional[object]
    source: str
    name: str
    warnings: List[str] = field(default_factory=list)

    @property
    def pixel_spacing(self) -> Tuple[float, float]:
        """In-plane ``(x, y)`` mm per pixel."""
        return self.spacing[2], self.spacing[1]

    def to_lps(self, xyz) -> np.ndarray:
        """LPS mm of (fractional) voxel coordinates ``(..., 3)`` ordered ``(x, y, z)``."""
        p = np.asarray(xyz, dtype=np.float64)
        z_mm = np.interp(p[..., 2], np.arange(len(self.z_positions)),
                         self.z_positions - self.z_positions[0])
        return (self.origin + p[..., 0:1] * self.spacing[2] * self.direction[:, 0] +
                p[..., 1:2] * self.spacing[1] * self.direction[:, 1] +
                z_mm[..., None] * self.direction[:, 2])

    def to_stored_index(self, xyz) -> np.ndarray:
        """Voxel coordinates ``(..., 3)`` ``(x, y, z)`` of this volume as indices of the input
        file as stored (its own axis order and directions)."""
        p = np.asarray(xyz, dtype=np.float64)
        perm, flip, shape = self.to_stored
        out = np.empty_like(p)
        for i in range(3):
            v = p[..., i]
            out[..., perm[i]] = (shape[perm[i]] - 1 - v) if flip[i] else v
        return out


def _sitk():
    try:
        import SimpleITK as sitk
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError('reading CT volumes needs SimpleITK (pip install SimpleITK)') from e
    return sitk


def _case_name(path: str) -> str:
    base = osp.basename(osp.normpath(path))
    for ext in sorted(NIFTI_LIKE, key=len, reverse=True):
        if base.lower().endswith(ext):
            return base[:-len(ext)]
    return base


def _stored_map(direction: np.ndarray, oriented_dir: np.ndarray, size_xyz) -> tuple:
    perm, flip = [], []
    for i in range(3):
        dots = oriented_dir[:, i] @ direction  # with each stored axis
        j = int(np.argmax(np.abs(dots)))
        perm.append(j)
        flip.append(bool(dots[j] < 0))
    if sorted(perm) != [0, 1, 2]:
        raise CTReadError('cannot map the reoriented axes back to the stored ones')
    return tuple(perm), tuple(flip), tuple(int(s) for s in size_xyz)


def _from_image(img,
                source: str,
                name: str,
                z_positions: Optional[np.ndarray] = None,
                notes: Sequence[str] = ()) -> CTVolume:
    """A SimpleITK image (any orientation) as an LPS-ordered :class:`CTVolume`."""
    sitk = _sitk()
    if img.GetDimension() != 3 or min(img.GetSize()) < 1:
        raise CTReadError(f'{source}: a CT volume has 3 dimensions, got size {img.GetSize()}')
    if img.GetSize()[2] == 1 or img.GetNumberOfComponentsPerPixel() != 1:
        raise CTReadError(f'{source}: a 2D image or a multi-component image, not a CT volume '
                          f'(size {img.GetSize()}, {img.GetNumberOfComponentsPerPixel()} '
                          'components)')
    direction = np.array(img.GetDirection()).reshape(3, 3)
    oriented = sitk.DICOMOrient(img, 'LPS')
    odir = np.array(oriented.GetDirection()).reshape(3, 3)
    to_stored = _stored_map(direction, odir, img.GetSize())
    hu = sitk.GetArrayFromImage(oriented).astype(np.float32)  # (Z, Y, X)
    sx, sy, sz = oriented.GetSpacing()
    if z_positions is None or to_stored[0][2] != 2:  # uniform, or z was a stored in-plane axis
        z_positions = np.arange(hu.shape[0]) * sz
    else:  # the real positions along the stored slice normal, in this volume's slice order
        p = np.asarray(z_positions, dtype=np.float64)
        z_positions = -p[::-1] if to_stored[1][2] else p
        z_positions = z_positions - z_positions[0]
    return CTVolume(
        hu=hu,
        spacing=(float(sz), float(sy), float(sx)),
        z_positions=np.asarray(z_positions, dtype=np.float64),
        origin=np.array(oriented.GetOrigin(), dtype=np.float64),
        direction=odir,
        to_stored=to_stored,
        reference=img,
        source=source,
        name=name,
        warnings=list(notes))


def _check_spacing(z_positions: np.ndarray, source: str) -> List[str]:
    gaps = np.diff(z_positions)
    if len(gaps) == 0:
        return []
    if np.any(gaps <= 0):
        raise CTReadError(f'{source}: two slices share a position (or the order is broken): '
                          f'gaps {np.round(gaps[gaps <= 0], 3).tolist()} mm')
    med = float(np.median(gaps))
    if gaps.max() - gaps.min() > SPACING_TOLERANCE * med:
        msg = (f'{source}: inconsistent slice spacing ({gaps.min():.3g} to {gaps.max():.3g} mm, '
               f'median {med:.3g}); neighbours are sampled at the real slice positions')
        warnings.warn(msg)
        return [msg]
    return []


def _read_dicom(folder: str, series: Optional[str]) -> CTVolume:
    sitk = _sitk()
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
    if not ids:
        raise CTReadError(f'{folder}: no DICOM series found in this folder')
    if series is None:
        if len(ids) > 1:
            raise CTReadError(f'{folder}: holds {len(ids)} DICOM series, pick one with --series: ' +
                              ', '.join(ids))
        series = ids[0]
    elif series not in ids:
        raise CTReadError(f'{folder}: no series {series}; it holds ' + ', '.join(ids))
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, series)
    in_series = set(map(osp.abspath, files))
    notes = []
    others = [
        f for f in sorted(glob.glob(osp.join(folder, '*')))
        if osp.isfile(f) and osp.abspath(f) not in in_series
    ]
    bad = []
    for f in others:  # not in a series: another series, or not readable as DICOM
        r = sitk.ImageFileReader()
        r.SetFileName(f)
        try:
            r.ReadImageInformation()
        except RuntimeError:
            bad.append(osp.basename(f))
    if bad:
        msg = f'{folder}: skipped {len(bad)} unreadable file(s): {", ".join(bad[:10])}'
        warnings.warn(msg)
        notes.append(msg)
    info = sitk.ImageFileReader()
    info.SetFileName(files[0])
    info.ReadImageInformation()
    modality = info.GetMetaData('0008|0060').strip() if info.HasMetaDataKey('0008|0060') else ''
    if modality and modality.upper() != 'CT':
        raise CTReadError(f'{files[0]}: Modality is {modality!r}, not CT')
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        img = reader.Execute()
    except RuntimeError as e:
        raise CTReadError(f'{folder}: cannot read series {series}: {str(e).strip()[:300]}') \
            from None
    positions = []
    normal = np.array(img.GetDirection()).reshape(3, 3)[:, 2]
    for k in range(len(files)):
        try:
            ipp = [float(v) for v in reader.GetMetaData(k, '0020|0032').split('\\')]
            positions.append(float(np.dot(ipp, normal)))
        except (RuntimeError, ValueError):
            positions = None
            break
    if positions is not None:
        positions = np.asarray(positions)
        notes += _check_spacing(positions, folder)
    return _from_image(img, f'DICOM series {series} in {folder}', _case_name(folder), positions,
                       notes)


def _read_file(path: str) -> CTVolume:
    sitk = _sitk()
    try:
        img = sitk.ReadImage(path)
    except RuntimeError as e:
        raise CTReadError(f'{path}: unreadable ({str(e).strip().splitlines()[-1][:200]})') \
            from None
    return _from_image(img, f'{path}', _case_name(path))


_PNG_NAME = re.compile(r'^(\d+)\.png$')


def dl_info_geometry(dl_info: str, series_dir: str) -> Tuple[float, float]:
    """``(pixel spacing, slice interval)`` of a DeepLesion series from a ``DL_info.csv``."""
    with open(dl_info, newline='', encoding='utf-8-sig') as f:
        for row in csv.DictReader(f):
            if (row.get('File_name') or '').rsplit('_', 1)[0] == series_dir:
                x, _, z = (float(v) for v in row['Spacing_mm_px_'].split(','))
                return x, z
    raise CTReadError(f'{dl_info}: no row of series {series_dir}')


def _read_png_series(folder: str, spacing: Optional[float], thickness: Optional[float],
                     dl_info: Optional[str]) -> CTVolume:
    names = sorted(
        (int(m.group(1)), n) for n in os.listdir(folder) for m in [_PNG_NAME.match(n)] if m)
    if not names:
        raise CTReadError(f'{folder}: no DeepLesion PNG slices (<index>.png)')
    if spacing is None or thickness is None:
        if dl_info is None:
            raise CTReadError(f'{folder}: a DeepLesion PNG series needs --spacing and '
                              '--slice-thickness, or --dl-info DL_info.csv to look them up')
        sp, th = dl_info_geometry(dl_info, osp.basename(osp.normpath(folder)))
        spacing = spacing if spacing is not None else sp
        thickness = thickness if thickness is not None else th
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
    notes = _check_spacing(z, folder)
    ident = np.eye(3)
    return CTVolume(
        hu=hu,
        spacing=(float(np.median(np.diff(z))) if len(z) > 1 else float(thickness), float(spacing),
                 float(spacing)),
        z_positions=z,
        origin=np.zeros(3),
        direction=ident,
        to_stored=((0, 1, 2), (False, False, False), (hu.shape[2], hu.shape[1], hu.shape[0])),
        reference=None,
        source=f'DeepLesion PNG series {folder}',
        name=osp.basename(osp.normpath(folder)),
        warnings=notes)


def read_ct(path: str,
            series: Optional[str] = None,
            spacing: Optional[float] = None,
            slice_thickness: Optional[float] = None,
            dl_info: Optional[str] = None) -> CTVolume:
    """Read a CT from a DICOM folder, a NIfTI / NRRD / MetaImage file or a DeepLesion PNG series
    folder (``spacing``/``slice_thickness`` in mm, or looked up in ``dl_info``).

    Raises :class:`CTReadError` (a ``ValueError``) with a one-line message naming the input.
    """
    if not osp.exists(path):
        raise CTReadError(f'{path}: no such file or folder')
    if osp.isdir(path):
        if any(_PNG_NAME.match(n) for n in os.listdir(path)):
            return _read_png_series(path, spacing, slice_thickness, dl_info)
        return _read_dicom(path, series)
    if not path.lower().endswith(NIFTI_LIKE):
        raise CTReadError(f'{path}: unsupported file type (use a DICOM folder, '
                          f'{", ".join(NIFTI_LIKE)}, or a DeepLesion PNG folder)')
    return _read_file(path)


def volume_to_image(vol: CTVolume):
    """The volume as a SimpleITK image (int16 HU) in its LPS-ordered geometry; uneven slice gaps
    are written as their median (NIfTI has one slice spacing)."""
    sitk = _sitk()
    img = sitk.GetImageFromArray(np.clip(np.round(vol.hu), -32768, 32767).astype(np.int16))
    img.SetSpacing((vol.spacing[2], vol.spacing[1], vol.spacing[0]))
    img.SetOrigin(tuple(float(v) for v in vol.origin))
    img.SetDirection(tuple(float(v) for v in vol.direction.reshape(-1)))
    return img
