"""DICOM CT inputs: a classic series (one file a slice) and an enhanced multi-frame CT (one file),
in a folder at any depth or a ``.zip`` (series found by :mod:`acsdet.io.dicom_discovery`).

Classic series: pydicom reads each file's header to leave out localizer / scout images (ImageType
``LOCALIZER``, or an orientation other than the series'), to refuse two slices at one position,
slices of mixed sizes, missing slices (a gap in both the positions and the instance numbers) and a
gantry tilt (slices stepping sideways) naming the files, and to keep the real slice positions;
SimpleITK (GDCM) reads the pixels (RescaleSlope/Intercept applied; every transfer syntax GDCM
decodes: JPEG lossless and baseline, JPEG-LS, JPEG 2000, RLE, deflate). The headers stay with the
volume (``CTVolume.dicom``, :class:`DicomSource`) for the DICOM SEG and SR that reference them.
Enhanced CT (SOP class 1.2.840.10008.5.1.4.1.1.2.1): pydicom reads the frames and their functional
groups (per-frame Image Position, shared or per-frame orientation, pixel spacing and rescale);
frames whose values are not HU (a Real World Value Mapping in another unit, e.g. a perfusion map)
are refused.
"""
import os.path as osp
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .ct_volume import CTReadError, _warn, check_slice_positions, from_image, sitk
from .dicom_discovery import dicom_folder, find_ct_series, is_zip, pick_series
from .readers import CTReader, case_name, register_ct_reader

_HU_UNITS = {"[hnsf'U]", 'HU', '[HU]'}


def is_dicom_file(path: str) -> bool:
    """A DICOM Part 10 file (``DICM`` at byte 128)."""
    try:
        with open(path, 'rb') as f:
            f.seek(128)
            return f.read(4) == b'DICM'
    except OSError:
        return False


@dataclass
class DicomSource:
    """The DICOM instances a volume was read from: what derived objects (DICOM SEG, SR) reference.

    Attributes:
        datasets: the headers (no pixel data) of the stored slices in the order of the read image
            (``CTVolume.reference``'s slice axis), or one enhanced-CT file's header.
        frames: for an enhanced CT, the (0-based) frame of each stored slice; None for a classic
            series (stored slice ``k`` is ``datasets[k]``).
    """
    datasets: list
    frames: Optional[List[int]] = None

    def instance(self, stored_slice: int):
        """``(dataset, frame number (1-based) or None)`` of a stored slice."""
        if self.frames is None:
            return self.datasets[stored_slice], None
        return self.datasets[0], self.frames[stored_slice] + 1


class _Header:
    """The header fields of one classic-series file that the reader decides on."""

    def __init__(self, path: str, ds):
        self.path, self.ds = path, ds
        self.image_type = '\\'.join(str(v) for v in getattr(ds, 'ImageType', [])).upper()
        self.pixel_spacing = getattr(ds, 'PixelSpacing', None)
        self.size = (getattr(ds, 'Rows', None), getattr(ds, 'Columns', None))
        self.instance_number = getattr(ds, 'InstanceNumber', None)
        try:
            self.iop = np.array([float(v) for v in ds.ImageOrientationPatient])
            self.ipp = np.array([float(v) for v in ds.ImagePositionPatient])
            if self.iop.shape != (6, ) or self.ipp.shape != (3, ):
                raise ValueError
        except (AttributeError, ValueError, TypeError):
            self.iop = self.ipp = None

    def show(self, what: str) -> str:
        """``what`` (a header keyword) as this file holds it, for messages."""
        value = getattr(self.ds, what, None)
        if what == 'PixelSpacing' and value:
            value = [float(v) for v in value]
        return f'{what} {value}'


def _check_sizes(keep: List[_Header], source: str) -> None:
    sizes = Counter(h.size for h in keep)
    if len(sizes) > 1:
        common = sizes.most_common(1)[0][0]
        odd = [h for h in keep if h.size != common]
        raise CTReadError(f'{source}: slices of mixed sizes ({len(odd)} of {len(keep)} are not '
                          f'{common[1]} x {common[0]} px: {osp.basename(odd[0].path)} is '
                          f'{odd[0].size[1]} x {odd[0].size[0]}): not one CT volume')


def _check_one_volume(keep: List[_Header], source: str) -> None:
    """Refuse slices that are not one CT: two pixel spacings (one would be applied to all: wrong
    sizes and positions), one SOPInstanceUID twice (a SEG frame would reference two slices), or
    another patient, study or frame of reference in one series. Errors name the files."""

    def differing(values, what: str) -> None:
        groups = Counter(values)
        if len(groups) > 1:
            common = groups.most_common(1)[0][0]
            odd = [h for h, v in zip(keep, values) if v != common]
            raise CTReadError(
                f'{source}: {len(odd)} of {len(keep)} slices have another {what} than the rest '
                f'({odd[0].show(what)} in {osp.basename(odd[0].path)}, '
                f'{keep[values.index(common)].show(what)} in '
                f'{osp.basename(keep[values.index(common)].path)}): not one CT volume')

    spacing = [tuple(round(float(v), 4) for v in h.pixel_spacing or ()) for h in keep]
    differing(spacing, 'PixelSpacing')
    for what in ('PatientID', 'StudyInstanceUID', 'FrameOfReferenceUID'):
        differing([str(getattr(h.ds, what, '') or '') for h in keep], what)
    seen = {}
    for h in keep:
        uid = str(getattr(h.ds, 'SOPInstanceUID', '') or '')
        if uid and uid in seen:
            raise CTReadError(f'{source}: {osp.basename(seen[uid])} and {osp.basename(h.path)} '
                              f'have one SOPInstanceUID ({uid}): a copied file? Keep one of them')
        seen[uid] = h.path


def check_gantry_tilt(ipps: np.ndarray, iop: np.ndarray, pixel_mm: float, source: str) -> None:
    """Refuse slices whose positions ``(n, 3)`` (sorted along the slice normal) step sideways, not
    along the normal of ``iop``: a gantry tilt. Read as a stack along the normal, the volume
    would be sheared against the CT and positions off by up to the sideways shift; refused
    once that reaches half a pixel (``pixel_mm``)."""
    if len(ipps) < 2:
        return
    normal = np.cross(iop[:3], iop[3:])
    d = ipps - ipps[0]
    along = d @ normal
    sideways = d - along[:, None] * normal
    shift = float(np.linalg.norm(sideways, axis=1).max())
    if shift < 0.5 * pixel_mm:
        return
    angle = float(np.degrees(np.arctan2(np.linalg.norm(sideways[-1]), abs(along[-1]))))
    raise CTReadError(f'{source}: a gantry tilt of {angle:.1f} degrees (the slices step '
                      f'{shift:.1f} mm sideways over the series, not along their normal): read '
                      'as a stack the volume would be sheared and lesion positions off by up to '
                      'that; resample it onto an orthogonal grid first (dcm2niix or 3D Slicer '
                      'correct gantry tilt) and pass the NIfTI')


def _check_missing(keep: List[_Header], pos: np.ndarray, source: str) -> None:
    """Refuse a series whose instance numbers and positions both say slices are missing."""
    nums = [h.instance_number for h in keep]
    if len(keep) < 3 or any(n is None for n in nums):
        return
    nums = np.array([int(n) for n in nums])
    gaps = np.diff(pos)
    med = float(np.median(gaps))
    steps = np.abs(np.diff(nums))
    for i in np.flatnonzero((gaps > 1.5 * med) & (steps > 1)):
        lost = int(steps[i]) - 1
        raise CTReadError(f'{source}: {lost} slice(s) missing between instance {nums[i]} and '
                          f'{nums[i + 1]} ({osp.basename(keep[i].path)}, '
                          f'{osp.basename(keep[i + 1].path)}; a {gaps[i]:.3g} mm gap where the '
                          f'series steps {med:.3g} mm): copy the whole series again')


def _classic_series(files: List[str], datasets: list, source: str, name: str):
    notes: List[str] = []
    headers = [_Header(f, ds) for f, ds in zip(files, datasets)]
    missing = [osp.basename(h.path) for h in headers if h.iop is None]
    if missing:
        raise CTReadError(f'{source}: {len(missing)} file(s) without Image Position / Orientation '
                          f'(Patient): {", ".join(missing[:5])}')
    common = Counter(tuple(np.round(h.iop, 3)) for h in headers).most_common(1)[0][0]
    keep, left = [], []
    for h in headers:
        if 'LOCALIZER' in h.image_type or np.abs(h.iop - np.array(common)).max() > 1e-3:
            left.append(h)
        else:
            keep.append(h)
    if left:
        _warn(
            notes, f'{source}: left out {len(left)} localizer / scout image(s) (ImageType '
            f'LOCALIZER or another orientation than the series): '
            f'{", ".join(osp.basename(h.path) for h in left[:5])}')
    if not keep:
        raise CTReadError(f'{source}: only localizer / scout images, no axial CT slices')
    if not keep[0].pixel_spacing:
        raise CTReadError(f'{keep[0].path}: no Pixel Spacing (0028,0030): the pixel size is '
                          'unknown')
    _check_sizes(keep, source)
    _check_one_volume(keep, source)
    iop = np.array(common)
    normal = np.cross(iop[:3], iop[3:])
    pos = np.array([float(h.ipp @ normal) for h in keep])
    order = np.argsort(pos, kind='stable')
    keep = [keep[i] for i in order]
    pos = pos[order]
    notes += check_slice_positions(pos, source, [osp.basename(h.path) for h in keep])
    check_gantry_tilt(
        np.array([h.ipp for h in keep]), iop, min(float(v) for v in keep[0].pixel_spacing), source)
    _check_missing(keep, pos, source)
    reader = sitk().ImageSeriesReader()
    reader.SetFileNames([h.path for h in keep])
    try:
        img = reader.Execute()
    except RuntimeError as e:
        raise CTReadError(f'{source}: cannot read the series: {str(e).strip()[:300]}') from None
    # the positions along the read image's slice axis (ITK orders by the files given)
    zdir = np.array(img.GetDirection()).reshape(3, 3)[:, 2]
    positions = np.array([float(h.ipp @ zdir) for h in keep])
    vol = from_image(img, source, name, positions, notes)
    vol.dicom = DicomSource([h.ds for h in keep])
    return vol


def read_dicom_folder(folder: str, series: Optional[str] = None, where: Optional[str] = None):
    """The CT series under ``folder`` (searched recursively; ``series``: its SeriesInstanceUID
    when there are several). ``where``: how messages name the input (default ``folder``)."""
    where = where or folder
    ct, note = find_ct_series(folder, where)
    chosen = pick_series(ct, series, where)
    source = f'DICOM series {chosen.uid} in {where}'
    notes: List[str] = []
    if note:
        _warn(notes, note)
    name = case_name(where)
    if chosen.kind == 'enhanced-ct':
        if len(chosen.files) > 1:
            raise CTReadError(f'{source}: {len(chosen.files)} enhanced-CT files in one series '
                              '(several stacks): pass one file')
        vol = read_enhanced_ct(chosen.files[0], name)
    else:
        vol = _classic_series(chosen.files, chosen.datasets, source, name)
    vol.warnings[:0] = notes
    return vol


def _item(ds, frame_groups, seq: str):
    """The first item of functional group ``seq`` for a frame: per-frame, else shared."""
    for groups in (frame_groups, getattr(ds, 'SharedFunctionalGroupsSequence', [None])[0]):
        if groups is not None and seq in groups and len(groups[seq].value):
            return groups[seq].value[0]
    return None


def _not_hu(ds, groups) -> Optional[str]:
    """Why a frame's values are not HU, or None."""
    rwvm = _item(ds, groups, 'RealWorldValueMappingSequence')
    if rwvm is not None and 'MeasurementUnitsCodeSequence' in rwvm:
        unit = rwvm.MeasurementUnitsCodeSequence[0]
        if str(unit.CodeValue) not in _HU_UNITS:
            what = getattr(rwvm, 'LUTExplanation', '') or getattr(rwvm, 'LUTLabel', '')
            return f'{what} in {unit.CodeValue}'.strip()
    return None


def read_enhanced_ct(path: str, name: Optional[str] = None):
    """An enhanced (multi-frame) CT file as a :class:`~acsdet.io.ct_volume.CTVolume`, frames
    ordered by their Image Position (Patient) along the slice normal."""
    try:
        import pydicom
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError('reading enhanced CT needs pydicom (pip install pydicom)') from e
    try:
        ds = pydicom.dcmread(path)
    except Exception as e:  # pydicom raises several types for a damaged file
        raise CTReadError(f'{path}: unreadable DICOM file ({type(e).__name__}: {e})') from None
    source = f'enhanced CT {path}'
    modality = str(getattr(ds, 'Modality', '')).upper()
    if modality and modality != 'CT':
        raise CTReadError(f'{path}: Modality is {modality!r}, not CT')
    if 'PerFrameFunctionalGroupsSequence' not in ds:
        raise CTReadError(f'{path}: one DICOM image, not an enhanced (multi-frame) CT: pass the '
                          'folder that holds its series')
    per_frame = list(ds.PerFrameFunctionalGroupsSequence)
    n = int(getattr(ds, 'NumberOfFrames', 1) or 1)
    if len(per_frame) != n:
        raise CTReadError(f'{path}: {n} frames but {len(per_frame)} per-frame functional groups')
    notes: List[str] = []
    iops, ipps, spacings, rescale, localizers = [], [], [], [], []
    for i, groups in enumerate(per_frame):
        why = _not_hu(ds, groups)
        if why:
            raise CTReadError(f'{path}: frame {i + 1} holds {why}, not CT values in HU (a derived '
                              'map, e.g. perfusion): not an input for lesion detection')
        ftype = _item(ds, groups, 'CTImageFrameTypeSequence')
        if ftype is not None and 'LOCALIZER' in [str(v).upper() for v in ftype.FrameType]:
            localizers.append(i)
            continue
        ori, pos = _item(ds, groups,
                         'PlaneOrientationSequence'), _item(ds, groups, 'PlanePositionSequence')
        meas = _item(ds, groups, 'PixelMeasuresSequence')
        if ori is None or pos is None or meas is None or 'PixelSpacing' not in meas:
            raise CTReadError(f'{path}: frame {i + 1} has no plane orientation, plane position or '
                              'pixel spacing in its functional groups')
        pvt = _item(ds, groups, 'PixelValueTransformationSequence')
        iops.append([float(v) for v in ori.ImageOrientationPatient])
        ipps.append([float(v) for v in pos.ImagePositionPatient])
        spacings.append([float(v) for v in meas.PixelSpacing])
        rescale.append((float(getattr(pvt, 'RescaleSlope', 1.0) if pvt else 1.0),
                        float(getattr(pvt, 'RescaleIntercept', 0.0) if pvt else 0.0)))
    if localizers:
        _warn(notes, f'{source}: left out {len(localizers)} localizer frame(s)')
    if not iops:
        raise CTReadError(f'{path}: no frame that is an axial CT image')
    iops, ipps, spacings = np.array(iops), np.array(ipps), np.array(spacings)
    if np.abs(iops - iops[0]).max() > 1e-3 or np.abs(spacings - spacings[0]).max() > 1e-4:
        raise CTReadError(f'{path}: frames of several orientations or pixel spacings (several '
                          'stacks in one file): not one CT volume')
    try:
        pixels = ds.pixel_array
    except Exception as e:  # no decoder for the transfer syntax, damaged pixel data
        hint = ''
        try:
            import gdcm  # noqa: F401
        except ImportError:
            hint = " (python-gdcm of acsdet's DICOM extra decodes it: pip install 'acsdet[dicom]')"
        raise CTReadError(f'{path}: cannot decode the pixel data (transfer syntax '
                          f'{ds.file_meta.get("TransferSyntaxUID", "unknown")}): {e}{hint}') \
            from None
    pixels = pixels.reshape((n, ) + pixels.shape[-2:])
    left_out = set(localizers)
    frames = [i for i in range(n) if i not in left_out]
    normal = np.cross(iops[0][:3], iops[0][3:])
    pos = ipps @ normal
    order = np.argsort(pos, kind='stable')
    notes += check_slice_positions(pos[order], source, [f'frame {frames[i] + 1}' for i in order])
    check_gantry_tilt(ipps[order], iops[0], float(spacings[0].min()), source)
    hu = np.stack(
        [pixels[frames[i]].astype(np.float32) * rescale[i][0] + rescale[i][1] for i in order])
    if len(hu) == 1:
        raise CTReadError(f'{path}: one axial frame, not a CT volume')
    img = sitk().GetImageFromArray(hu)
    img.SetSpacing((spacings[0][1], spacings[0][0], float(np.median(np.diff(pos[order])))))
    img.SetOrigin(tuple(ipps[order[0]]))  # PixelSpacing above is (row, column)
    img.SetDirection(tuple(np.column_stack([iops[0][:3], iops[0][3:], normal]).reshape(-1)))
    vol = from_image(img, source, name or osp.splitext(osp.basename(path))[0], pos[order], notes)
    del ds.PixelData  # the header stays for derived objects, the pixels go
    vol.dicom = DicomSource([ds], [frames[i] for i in order])
    return vol


@register_ct_reader
class DicomSeriesReader(CTReader):
    """A folder of DICOM files: one classic CT series (``series``: its SeriesInstanceUID when
    the folder holds several) or one enhanced-CT file."""
    name = 'dicom-series'
    is_dicom = True
    description = 'a DICOM folder'
    options = ('series', )

    def accepts(self, path: str) -> bool:
        return osp.isdir(path)

    def read(self, path: str, series: Optional[str] = None):
        return read_dicom_folder(path, series)


@register_ct_reader
class DicomZipReader(CTReader):
    """A ``.zip`` of a DICOM study (any folder layout inside; ``series`` as for a folder). The
    zip is extracted into a temporary folder, read, and the temporary removed."""
    name = 'dicom-zip'
    is_dicom = True
    description = 'a .zip of a DICOM study'
    extensions = ('.zip', )
    options = ('series', )
    priority = 55

    def accepts(self, path: str) -> bool:
        return is_zip(path)

    def read(self, path: str, series: Optional[str] = None):
        with dicom_folder(path) as folder:
            return read_dicom_folder(folder, series, where=path)


@register_ct_reader
class EnhancedCTReader(CTReader):
    """One enhanced (multi-frame) CT file."""
    name = 'dicom-enhanced'
    is_dicom = True
    description = 'an enhanced-CT DICOM file'
    extensions = ('.dcm', )
    priority = 60

    def accepts(self, path: str) -> bool:
        return not osp.isdir(path) and is_dicom_file(path)

    def read(self, path: str):
        return read_enhanced_ct(path)
