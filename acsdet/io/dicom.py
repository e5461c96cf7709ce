"""DICOM CT inputs: a classic series (one file a slice) and an enhanced multi-frame CT (one file).

Classic series: SimpleITK (GDCM) finds the series and reads the pixels (RescaleSlope/Intercept
applied); acsdet reads each file's header first to leave out localizer / scout images (ImageType
``LOCALIZER``, or an orientation other than the series'), to refuse two slices at one position
naming the files, and to keep the real slice positions. Enhanced CT (SOP class
1.2.840.10008.5.1.4.1.1.2.1): pydicom reads the frames and their functional groups (per-frame
Image Position, shared or per-frame orientation, pixel spacing and rescale); frames whose values
are not HU (a Real World Value Mapping in another unit, e.g. a perfusion map) are refused.
"""
import glob
import os.path as osp
from collections import Counter
from typing import List, Optional

import numpy as np

from .readers import CTReader, case_name, register_ct_reader
from .volume import CTReadError, _warn, check_slice_positions, from_image, sitk

ENHANCED_CT = '1.2.840.10008.5.1.4.1.1.2.1'
_HU_UNITS = {"[hnsf'U]", 'HU', '[HU]'}


def is_dicom_file(path: str) -> bool:
    """A DICOM Part 10 file (``DICM`` at byte 128)."""
    try:
        with open(path, 'rb') as f:
            f.seek(128)
            return f.read(4) == b'DICM'
    except OSError:
        return False


class _Header:
    """The header fields of one classic-series file that the reader decides on."""

    def __init__(self, path: str):
        r = sitk().ImageFileReader()
        r.SetFileName(path)
        r.ReadImageInformation()
        self.path = path

        def get(tag):
            return r.GetMetaData(tag).strip() if r.HasMetaDataKey(tag) else ''

        self.modality = get('0008|0060')
        self.image_type = get('0008|0008').upper()
        self.frames = int(get('0028|0008') or 1)
        self.sop_class = get('0008|0016')
        self.pixel_spacing = get('0028|0030')
        try:
            self.iop = np.array([float(v) for v in get('0020|0037').split('\\')])
            self.ipp = np.array([float(v) for v in get('0020|0032').split('\\')])
            if self.iop.shape != (6, ) or self.ipp.shape != (3, ):
                raise ValueError
        except ValueError:
            self.iop = self.ipp = None


def _classic_series(folder: str, files: List[str], headers: List[_Header], source: str):
    notes: List[str] = []
    with_geometry = [h for h in headers if h.iop is not None]
    if len(with_geometry) < len(headers):
        missing = [osp.basename(h.path) for h in headers if h.iop is None]
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
    iop = np.array(common)
    normal = np.cross(iop[:3], iop[3:])
    pos = np.array([float(h.ipp @ normal) for h in keep])
    order = np.argsort(pos, kind='stable')
    keep = [keep[i] for i in order]
    pos = pos[order]
    notes += check_slice_positions(pos, source, [osp.basename(h.path) for h in keep])
    reader = sitk().ImageSeriesReader()
    reader.SetFileNames([h.path for h in keep])
    try:
        img = reader.Execute()
    except RuntimeError as e:
        raise CTReadError(f'{source}: cannot read the series: {str(e).strip()[:300]}') from None
    # the positions along the read image's slice axis (ITK orders by the files given)
    zdir = np.array(img.GetDirection()).reshape(3, 3)[:, 2]
    positions = np.array([float(h.ipp @ zdir) for h in keep])
    return from_image(img, source, case_name(folder), positions, notes)


def read_dicom_folder(folder: str, series: Optional[str] = None):
    """The CT series in ``folder`` (``series``: its SeriesInstanceUID when there are several)."""
    sitk_ = sitk()
    ids = sitk_.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
    if not ids:
        raise CTReadError(f'{folder}: no DICOM series found in this folder')
    if series is None:
        if len(ids) > 1:
            raise CTReadError(f'{folder}: holds {len(ids)} DICOM series, pick one with --series: ' +
                              ', '.join(ids))
        series = ids[0]
    elif series not in ids:
        raise CTReadError(f'{folder}: no series {series}; it holds ' + ', '.join(ids))
    files = list(sitk_.ImageSeriesReader.GetGDCMSeriesFileNames(folder, series))
    source = f'DICOM series {series} in {folder}'
    notes: List[str] = []
    in_series = set(map(osp.abspath, files))
    bad = []
    for f in sorted(glob.glob(osp.join(glob.escape(folder), '*'))):
        if osp.isfile(f) and osp.abspath(f) not in in_series:  # another series, or not DICOM
            try:
                _Header(f)
            except RuntimeError:
                bad.append(osp.basename(f))
    if bad:
        _warn(notes, f'{folder}: skipped {len(bad)} unreadable file(s): {", ".join(bad[:10])}')
    try:
        headers = [_Header(f) for f in files]
    except RuntimeError as e:
        raise CTReadError(f'{source}: unreadable header ({str(e).strip()[-200:]})') from None
    modality = headers[0].modality
    if modality and modality.upper() != 'CT':
        raise CTReadError(f'{files[0]}: Modality is {modality!r}, not CT')
    if len(files) == 1 and (headers[0].frames > 1 or headers[0].sop_class == ENHANCED_CT):
        vol = read_enhanced_ct(files[0])
    else:
        vol = _classic_series(folder, files, headers, source)
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


def read_enhanced_ct(path: str):
    """An enhanced (multi-frame) CT file as a :class:`~acsdet.io.volume.CTVolume`, frames
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
        raise CTReadError(f'{path}: cannot decode the pixel data (transfer syntax '
                          f'{ds.file_meta.TransferSyntaxUID}): {e}') from None
    pixels = pixels.reshape((n, ) + pixels.shape[-2:])
    left_out = set(localizers)
    frames = [i for i in range(n) if i not in left_out]
    normal = np.cross(iops[0][:3], iops[0][3:])
    pos = ipps @ normal
    order = np.argsort(pos, kind='stable')
    notes += check_slice_positions(pos[order], source, [f'frame {frames[i] + 1}' for i in order])
    hu = np.stack(
        [pixels[frames[i]].astype(np.float32) * rescale[i][0] + rescale[i][1] for i in order])
    if len(hu) == 1:
        raise CTReadError(f'{path}: one axial frame, not a CT volume')
    img = sitk().GetImageFromArray(hu)
    img.SetSpacing((spacings[0][1], spacings[0][0], float(np.median(np.diff(pos[order])))))
    img.SetOrigin(tuple(ipps[order[0]]))  # PixelSpacing above is (row, column)
    img.SetDirection(tuple(np.column_stack([iops[0][:3], iops[0][3:], normal]).reshape(-1)))
    return from_image(img, source, osp.splitext(osp.basename(path))[0], pos[order], notes)


@register_ct_reader
class DicomSeriesReader(CTReader):
    """A folder of DICOM files: one classic CT series (``series``: its SeriesInstanceUID when
    the folder holds several) or one enhanced-CT file."""
    name = 'dicom-series'
    description = 'a DICOM folder'
    options = ('series', )

    def accepts(self, path: str) -> bool:
        return osp.isdir(path)

    def read(self, path: str, series: Optional[str] = None):
        return read_dicom_folder(path, series)


@register_ct_reader
class EnhancedCTReader(CTReader):
    """One enhanced (multi-frame) CT file."""
    name = 'dicom-enhanced'
    description = 'an enhanced-CT DICOM file'
    extensions = ('.dcm', )
    priority = 60

    def accepts(self, path: str) -> bool:
        return not osp.isdir(path) and is_dicom_file(path)

    def read(self, path: str):
        return read_enhanced_ct(path)
