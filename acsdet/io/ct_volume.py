"""``CTVolume``: a CT as axial slices in DeepLesion's order, validated in one place.

Every reader (:mod:`acsdet.io.reading`, :mod:`acsdet.io.dicom`) and every caller that builds a
volume itself ends here, so the rules hold for all of them:

- **Slice order.** DeepLesion's slice index runs from head to feet (``Normalized_lesion_location``
  z grows with the slice index), so a model trained on it sees stacks whose next slice is the more
  inferior one. A volume's index axes therefore point towards the patient's left, posterior and
  **inferior** (ITK orientation code ``'LPI'``): column index towards the patient's left (the
  patient's right on the image's left), row index towards posterior (anterior up), slice index
  towards the feet, whatever the file's storage orientation.
- **Spacing.** Non-finite or non-positive spacing is refused; spacing outside a plausible CT range
  (:data:`PLAUSIBLE_PIXEL_MM`, :data:`PLAUSIBLE_SLICE_MM`) is warned about.
- **Voxels.** Non-finite voxels (NaN, inf) are replaced by air (:data:`AIR_HU`) with a warning
  that counts them; a volume with no finite voxel is refused. Slices smaller in-plane than
  :data:`MIN_INPLANE_PX` are refused (not a CT slice; the model's strides need room).
"""
import hashlib
import os
import os.path as osp
import re
import warnings
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

#: ITK orientation code of a volume's index axes (see the module doc).
ORIENTATION = 'LPI'
#: In-plane pixel spacing (mm) and slice spacing (mm) outside which a warning is given.
PLAUSIBLE_PIXEL_MM = (0.1, 3.0)
PLAUSIBLE_SLICE_MM = (0.1, 20.0)
#: The value non-finite voxels are replaced with (air).
AIR_HU = -1024.0
#: The smallest in-plane size (pixels) a CT slice is accepted with.
MIN_INPLANE_PX = 32
#: Relative spread of slice gaps above which a series is "inconsistently spaced".
SPACING_TOLERANCE = 0.05


class CTReadError(ValueError):
    """A CT input that cannot be read; the message names the file or folder."""


def _warn(notes: List[str], msg: str) -> None:
    warnings.warn(msg)
    notes.append(msg)


@dataclass
class CTVolume:
    """A CT as axial slices, index axes towards L, P and I (DeepLesion's slice order).

    Attributes:
        hu: ``(Z, Y, X)`` float32 HU.
        spacing: ``(z, y, x)`` mm (z: the median slice gap).
        z_positions: ``(Z,)`` mm of each slice along the slice index direction, increasing (the
            real positions: DICOM series with uneven gaps keep them).
        origin: LPS mm of voxel ``(0, 0, 0)``; ``direction``: ``(3, 3)`` direction cosines, column
            ``i`` is the LPS direction of index axis ``i`` (x, y, z).
        to_stored: ``(perm, flip, shape)``: stored index axis ``perm[i]`` is this volume's axis
            ``i`` (x, y, z), reversed where ``flip[i]``; ``shape`` the stored ``(x, y, z)`` size.
        reference: the geometry of the image as read (:class:`StoredGeometry`, without its
            voxels, which ``hu`` holds) for label maps in that geometry, or None (written with
            this volume's geometry).
        source: what was read (format and path); ``name``: a name for the case.
        warnings: what the reading noticed (also issued as ``UserWarning``).
        input_key: what identifies the input across runs (:func:`input_key`), set by ``read_ct``.
        dicom: for a DICOM input, the instances read (:class:`acsdet.io.dicom.DicomSource`:
            headers per stored slice) for the derived DICOM objects; None otherwise.

    Built volumes are checked (see the module doc): :class:`CTReadError` naming ``source`` for
    what cannot be a CT; non-finite voxels replaced by air, with a warning.
    """
    hu: np.ndarray
    spacing: Tuple[float, float, float]
    z_positions: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    to_stored: Tuple[Tuple[int, int, int], Tuple[bool, bool, bool], Tuple[int, int, int]]
    reference: Optional['StoredGeometry']
    source: str
    name: str
    warnings: List[str] = field(default_factory=list)
    input_key: Optional[str] = None
    dicom: Optional[object] = None

    def __post_init__(self):
        src = self.source
        hu = np.asarray(self.hu)
        if hu.ndim != 3 or min(hu.shape) < 1:
            raise CTReadError(f'{src}: a CT volume is (slices, rows, columns), got {hu.shape}')
        if min(hu.shape[1:]) < MIN_INPLANE_PX:
            raise CTReadError(f'{src}: slices of {hu.shape[2]} x {hu.shape[1]} px are not CT '
                              f'slices (at least {MIN_INPLANE_PX} x {MIN_INPLANE_PX} px needed)')
        sp = np.asarray(self.spacing, dtype=np.float64)
        if sp.shape != (3, ) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
            raise CTReadError(f'{src}: voxel spacing (z, y, x) {tuple(self.spacing)} mm: every '
                              'spacing must be a finite positive number')
        self.spacing = tuple(float(v) for v in sp)
        z = np.asarray(self.z_positions, dtype=np.float64)
        if z.shape != (hu.shape[0], ) or not np.all(np.isfinite(z)) or np.any(np.diff(z) <= 0):
            raise CTReadError(f'{src}: slice positions must be {hu.shape[0]} finite, increasing '
                              f'numbers, got {np.round(z[:8], 3).tolist()}...')
        self.z_positions = z
        self._check_plausible(sp)
        finite = np.isfinite(hu)
        if not finite.all():
            bad = int(hu.size - np.count_nonzero(finite))
            if bad == hu.size:
                raise CTReadError(f'{src}: no voxel is a finite number (all NaN or inf)')
            hu = np.where(finite, hu, np.float32(AIR_HU))
            _warn(
                self.warnings, f'{src}: {bad} voxels ({100.0 * bad / hu.size:.2g} %) are NaN or '
                f'infinite; set to {AIR_HU:g} HU (air)')
        self.hu = hu.astype(np.float32, copy=False)

    def _check_plausible(self, sp: np.ndarray) -> None:
        lo, hi = PLAUSIBLE_PIXEL_MM
        for name, v in (('pixel spacing x', sp[2]), ('pixel spacing y', sp[1])):
            if not lo <= v <= hi:
                _warn(
                    self.warnings, f'{self.source}: {name} {v:g} mm is outside the plausible '
                    f'CT range {lo:g} to {hi:g} mm; measurements and volumes scale with it')
        lo, hi = PLAUSIBLE_SLICE_MM
        if len(self.z_positions) > 1 and not lo <= sp[0] <= hi:
            _warn(
                self.warnings, f'{self.source}: slice spacing {sp[0]:g} mm is outside the '
                f'plausible CT range {lo:g} to {hi:g} mm')

    @property
    def pixel_spacing_xy(self) -> Tuple[float, float]:
        """In-plane ``(x, y)`` mm per pixel (``spacing`` is ``(z, y, x)``, the array's axis
        order)."""
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

    def as_input_image(self, arr: np.ndarray):
        """``arr`` ``(Z, Y, X)`` on this volume's grid (a label map, say) as a SimpleITK image in
        the exact geometry of the input as stored: the reading's reorientation undone (axes
        permuted and flipped back, no interpolation). Without a ``reference`` (a PNG series), in
        this volume's own geometry."""
        if self.reference is None:
            return image_in_volume_geometry(arr, self)
        perm, flip, _ = self.to_stored
        xyz = arr.transpose(2, 1, 0)  # (x, y, z) of this volume
        for i in range(3):
            if flip[i]:
                xyz = np.flip(xyz, axis=i)
        order = [0, 0, 0]
        for i in range(3):
            order[perm[i]] = i
        stored = xyz.transpose(order)  # (x, y, z) as stored
        out = sitk().GetImageFromArray(np.ascontiguousarray(stored.transpose(2, 1, 0)))
        return self.reference.apply_to(out)

    def header_z_error_mm(self, anchor: int = 0) -> float:
        """The largest distance (mm) between a slice's real position and where an image header
        with one slice spacing (NIfTI) puts it, the header exact at slice ``anchor`` (its origin):
        0 for evenly spaced volumes."""
        z = self.z_positions - self.z_positions[anchor]
        return float(np.max(np.abs(z - (np.arange(len(z)) - anchor) * self.spacing[0])))

    def stored_first_slice(self) -> int:
        """This volume's slice that is the input's stored slice 0 (the origin of its header)."""
        perm, flip, _ = self.to_stored
        return len(self.z_positions) - 1 if perm[2] == 2 and flip[2] else 0


@dataclass(frozen=True)
class StoredGeometry:
    """An image's geometry as stored, without its voxels: what SimpleITK's ``CopyInformation``
    copies. A volume keeps this, not the image read, so that a CT's voxels are held once (as
    ``CTVolume.hu``): the int16 image of a 300-slice 512 x 512 CT is 150 MB more through the
    whole inference."""
    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    direction: Tuple[float, ...]

    @classmethod
    def of(cls, img) -> 'StoredGeometry':
        """The geometry of a SimpleITK image."""
        return cls(
            tuple(img.GetSize()), tuple(img.GetSpacing()), tuple(img.GetOrigin()),
            tuple(img.GetDirection()))

    def apply_to(self, img):
        """``img`` (the same size) given this geometry; returned."""
        if tuple(img.GetSize()) != self.size:
            raise ValueError(f'an image of size {img.GetSize()} cannot take the geometry of one '
                             f'of size {self.size}')
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction)
        return img


def input_key(path: str, series: Optional[str] = None) -> str:
    """What identifies an input across runs: its real absolute path (and the DICOM series asked
    for)."""
    key = osp.realpath(path)
    return f'{key}#{series}' if series else key


def input_path(key: str) -> str:
    """The path part of an :func:`input_key` (a ``#`` in the path itself is kept: only a final
    ``#<series UID>`` is the series)."""
    path, sep, series = key.rpartition('#')
    return path if sep and re.fullmatch(r'[0-9.]+', series) else key


def input_fingerprint(path: str) -> str:
    """What tells an input from one since replaced at the same path: the SHA-1 of the size and
    modification time of the file, or of every file under the folder (links followed, each
    real folder once)."""
    h = hashlib.sha1()
    if not osp.isdir(path):
        st = os.stat(path)
        h.update(f'{st.st_size}:{st.st_mtime_ns}'.encode())
        return h.hexdigest()
    seen = set()
    for root, dirs, files in os.walk(path, followlinks=True):
        real = osp.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            try:
                st = os.stat(osp.join(root, name))
            except OSError:  # a broken link
                continue
            rel = osp.relpath(osp.join(root, name), path)
            h.update(f'{rel}\0{st.st_size}:{st.st_mtime_ns}\n'.encode())
    return h.hexdigest()


def sitk():
    try:
        import SimpleITK
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError('reading CT volumes needs SimpleITK (pip install SimpleITK)') from e
    return SimpleITK


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


def from_image(img,
               source: str,
               name: str,
               z_positions: Optional[np.ndarray] = None,
               notes: Sequence[str] = ()) -> CTVolume:
    """A SimpleITK image (any orientation) as a :class:`CTVolume` in :data:`ORIENTATION`.

    ``z_positions``: the stored slices' real positions (mm along the stored slice normal, in
    stored order) where they are uneven; None takes the header's spacing.
    """
    sitk_ = sitk()
    if img.GetDimension() != 3 or min(img.GetSize()) < 1:
        raise CTReadError(f'{source}: a CT volume has 3 dimensions, got size {img.GetSize()}')
    if img.GetSize()[2] == 1 or img.GetNumberOfComponentsPerPixel() != 1:
        raise CTReadError(f'{source}: a 2D image or a multi-component image, not a CT volume '
                          f'(size {img.GetSize()}, {img.GetNumberOfComponentsPerPixel()} '
                          'components)')
    spacing = img.GetSpacing()
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise CTReadError(f'{source}: voxel spacing {spacing} mm: every spacing must be a finite '
                          'positive number')
    direction = np.array(img.GetDirection()).reshape(3, 3)
    oriented = sitk_.DICOMOrient(img, ORIENTATION)
    odir = np.array(oriented.GetDirection()).reshape(3, 3)
    to_stored = _stored_map(direction, odir, img.GetSize())
    # (Z, Y, X): one copy of the voxels (a view of the image's, then float32)
    hu = sitk_.GetArrayViewFromImage(oriented).astype(np.float32)
    sx, sy, sz = oriented.GetSpacing()
    origin = np.array(oriented.GetOrigin(), dtype=np.float64)
    del oriented
    if to_stored[0][2] != 2 and min(hu.shape[1:]) < MIN_INPLANE_PX:  # few reformatted slices
        plane = 'sagittal' if to_stored[0].index(2) == 0 else 'coronal'
        w, h = img.GetSize()[:2]
        raise CTReadError(f'{source}: {img.GetSize()[2]} {plane} slices of {w} x {h} px: acsdet '
                          f'detects on axial slices, and as axial slices this volume is only '
                          f'{hu.shape[2]} x {hu.shape[1]} px (at least {MIN_INPLANE_PX} x '
                          f'{MIN_INPLANE_PX} needed): use the axial series')
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
        origin=origin,
        direction=odir,
        to_stored=to_stored,
        reference=StoredGeometry.of(img),
        source=source,
        name=name,
        warnings=list(notes))


def check_slice_positions(z_positions: np.ndarray,
                          source: str,
                          files: Optional[Sequence[str]] = None) -> List[str]:
    """Refuse two slices at one position (naming them, with ``files`` in the same order);
    warn (and return the note) when the gaps are uneven. ``z_positions`` sorted ascending."""
    z = np.asarray(z_positions, dtype=np.float64)
    gaps = np.diff(z)
    if len(gaps) == 0:
        return []
    same = np.flatnonzero(gaps <= 1e-4)
    if len(same):
        i = int(same[0])
        which = f' ({files[i]} and {files[i + 1]})' if files is not None else ''
        raise CTReadError(f'{source}: two slices at the same position z = {z[i]:.4g} mm{which}'
                          f'{f"; {len(same)} such pairs" if len(same) > 1 else ""}: a duplicated '
                          'slice or two series in one; remove the duplicate')
    med = float(np.median(gaps))
    if gaps.max() - gaps.min() > SPACING_TOLERANCE * med:
        notes: List[str] = []
        _warn(
            notes, f'{source}: inconsistent slice spacing ({gaps.min():.3g} to {gaps.max():.3g} '
            f'mm, median {med:.3g}); neighbours are sampled at the real slice positions')
        return notes
    return []


def image_in_volume_geometry(arr: np.ndarray, vol: CTVolume):
    """``arr`` ``(Z, Y, X)`` (the volume's voxel grid) as a SimpleITK image with the volume's
    spacing, origin and direction; uneven slice gaps are written as the volume's one slice
    spacing (:meth:`CTVolume.header_z_error_mm` says how far a slice is then off)."""
    img = sitk().GetImageFromArray(arr)
    img.SetSpacing((vol.spacing[2], vol.spacing[1], vol.spacing[0]))
    img.SetOrigin(tuple(float(v) for v in vol.origin))
    img.SetDirection(tuple(float(v) for v in vol.direction.reshape(-1)))
    return img


def volume_to_image(vol: CTVolume):
    """The volume as a SimpleITK image (int16 HU) in its own geometry (index axes as
    :data:`ORIENTATION`)."""
    return image_in_volume_geometry(np.clip(np.round(vol.hu), -32768, 32767).astype(np.int16), vol)
