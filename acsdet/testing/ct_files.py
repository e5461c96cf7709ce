"""CT files for tests: one physical CT written as DeepLesion PNGs, NIfTI in any storage
orientation, a classic DICOM series and an enhanced (multi-frame) CT, and a phantom whose anatomy
differs head to feet.

Conventions: a volume ``hu`` ``(Z, Y, X)`` is in DeepLesion's order (slice 0 the most superior);
``spacing`` is ``(z, y, x)`` mm; slice ``k`` sits at S = ``-k x spacing[0]`` mm unless positions
are given (as :func:`acsdet.io.read_ct` places a DeepLesion PNG series).
"""
import os
import os.path as osp
import uuid
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

#: Storage orientations ``(perm, flip)`` relative to LPS: stored index axis ``perm[i]`` runs
#: along LPS axis ``i``, reversed where ``flip[i]``.
ORIENTATIONS = {
    'LPS': ((0, 1, 2), (False, False, False)),
    'RAS': ((0, 1, 2), (True, True, False)),
    'LPI': ((0, 1, 2), (False, False, True)),
    'coronal': ((0, 2, 1), (False, True, False)),  # stored y = LPS z, stored z = anterior
}


def head_to_feet_phantom(num_slices: int = 24,
                         size: int = 64,
                         seed: int = 0) -> Tuple[np.ndarray, list]:
    """``(hu (Z, Y, X) float32, lesions)``: a body whose upper half (low slice indices, the head
    side) holds two lungs (-850 HU) and whose lower half holds a pelvic bone ring (700 HU) around
    a bladder (10 HU); three round soft-tissue lesions (60 HU) of different sizes, one in a lung,
    one in the soft tissue near the middle, one beside the bladder. ``lesions``: ``(slice, x, y,
    radius px)``. Nothing is symmetric head to feet."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    hu = np.full((num_slices, size, size), -1000.0, np.float32)
    body = ((xx - c) / (0.45 * size))**2 + ((yy - c) / (0.38 * size))**2 <= 1
    half = num_slices // 2
    lesions = [(half // 2, c - 0.2 * size, c - 0.05 * size, 0.09 * size),
               (half, c + 0.02 * size, c + 0.22 * size, 0.06 * size),
               (half + (num_slices - half) // 2, c + 0.2 * size, c + 0.1 * size, 0.07 * size)]
    for k in range(num_slices):
        sl = hu[k]
        sl[body] = 40.0
        if k < half:  # chest: lungs
            for sx in (-1, 1):
                lung = ((xx - c - sx * 0.2 * size) / (0.14 * size))**2 + ((yy - c) /
                                                                          (0.25 * size))**2 <= 1
                sl[lung] = -850.0
        else:  # pelvis: a bone ring around a bladder
            r = np.hypot(xx - c, yy - c)
            sl[(r > 0.22 * size) & (r < 0.27 * size)] = 700.0
            sl[r < 0.12 * size] = 10.0
        for lesion in lesions:
            disc = lesion_disc(lesion, k, xx, yy)
            if disc is not None:
                sl[disc] = 60.0
        sl += rng.normal(0, 8, sl.shape).astype(np.float32)
    return np.round(hu), lesions


def lesion_disc(lesion, k: int, xx: np.ndarray, yy: np.ndarray) -> Optional[np.ndarray]:
    """Where the phantom draws ``lesion`` ``(slice, x, y, radius px)`` on slice ``k`` (a bool
    mask on the grid ``xx``, ``yy``; an ellipsoid 2.5 slices deep each side), or None."""
    z, x, y, rad = lesion
    rz = rad * np.sqrt(max(0.0, 1 - ((k - z) / 2.5)**2))
    return np.hypot(xx - x, yy - y) <= rz if rz > 0 else None


def phantom_lesion_labels(lesions, shape) -> np.ndarray:
    """The phantom's ``lesions`` as a label map ``shape`` ``(Z, Y, X)`` int16 (lesion ``i`` of
    the list is label ``i + 1``), exactly where :func:`head_to_feet_phantom` draws them."""
    yy, xx = np.mgrid[0:shape[1], 0:shape[2]]
    labels = np.zeros(shape, np.int16)
    for i, lesion in enumerate(lesions, start=1):
        for k in range(shape[0]):
            disc = lesion_disc(lesion, k, xx, yy)
            if disc is not None:
                labels[k][disc] = i
    return labels


def perfect_predictions(labels: np.ndarray, shift: int = 0, score=None) -> list:
    """Per-slice detections ``[(slice, boxes (n, 4), scores (n,), masks (n, H, W))]`` of every
    label's voxels on every slice (box edges and mask exact), ``shift`` slices lower; ``score(i,
    k)`` of label ``i`` on slice ``k`` (default ``1 - 0.1 i``)."""
    score = score or (lambda i, k: 1.0 - 0.1 * i)
    n = labels.shape[0]
    preds = []
    for k in range(n):
        boxes, scores, masks = [], [], []
        for i in range(1, int(labels.max()) + 1):
            m = labels[k] == i
            if m.any() and 0 <= k + shift < n:
                ys, xs = np.nonzero(m)
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                scores.append(score(i, k))
                masks.append(m)
        if boxes:
            preds.append((k + shift, np.array(boxes, float), np.array(scores), np.array(masks)))
    return preds


def write_png_series(hu: np.ndarray, folder: str, first_index: int = 0) -> str:
    """``hu`` as DeepLesion PNGs ``<first_index + k:03d>.png`` (uint16 = HU + 32768)."""
    os.makedirs(folder, exist_ok=True)
    for k, sl in enumerate(hu):
        raw = np.clip(np.round(sl) + 32768, 0, 65535).astype(np.uint16)
        if not cv2.imwrite(osp.join(folder, f'{first_index + k:03d}.png'), raw):
            raise OSError(f'cannot write a slice into {folder}')
    return folder


def lps_image(hu: np.ndarray, spacing: Sequence[float], top_s: float = 0.0):
    """The volume (DeepLesion's order) as the same physical image stored in LPS order (identity
    direction, slice index towards the head): ``SimpleITK.Image``. ``top_s``: S (mm) of slice 0."""
    import SimpleITK as sitk
    img = sitk.GetImageFromArray(np.ascontiguousarray(hu[::-1]).astype(np.int16))
    sz, sy, sx = spacing
    img.SetSpacing((float(sx), float(sy), float(sz)))
    img.SetOrigin((0.0, 0.0, top_s - (len(hu) - 1) * sz))
    return img


def stored_image(img, perm, flip):
    """An LPS-ordered image stored with index axis ``perm[i]`` along LPS axis ``i`` (reversed
    where ``flip[i]``): another storage orientation, the same voxels in space."""
    import SimpleITK as sitk
    arr = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # (x, y, z)
    size = np.array(arr.shape)
    spacing = np.array(img.GetSpacing())
    origin = np.array(img.GetOrigin())
    for i in range(3):
        if flip[i]:
            arr = np.flip(arr, axis=i)
            origin[i] += (size[i] - 1) * spacing[i]
    order = [0, 0, 0]
    for i in range(3):
        order[perm[i]] = i
    arr = arr.transpose(order)
    direction = np.zeros((3, 3))
    for i in range(3):  # stored axis perm[i] points along LPS axis i, negated if flipped
        direction[i, perm[i]] = -1.0 if flip[i] else 1.0
    out = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    out.SetSpacing(tuple(float(spacing[i]) for i in order))
    out.SetOrigin(tuple(origin))
    out.SetDirection(tuple(direction.reshape(-1)))
    return out


def _ct_dataset(modality: str, study: str, series_uid: str, sop_class: str):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.PatientName = modality, 'SYNTHETIC', 'Phantom^Test'
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series_uid
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[study, 'frame'])  # one per study
    # the patient / study / series attributes an archive's CT carries (Type 1 and 2)
    ds.PatientBirthDate, ds.PatientSex = '19700101', 'O'
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = '20260101', '120000', '1', 'A1'
    ds.ReferringPhysicianName, ds.Manufacturer = '', 'acsdet test series'
    ds.PositionReferenceIndicator = ''
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def write_dicom_series(hu,
                       spacing,
                       folder,
                       series_uid: Optional[str] = None,
                       modality: str = 'CT',
                       positions=None,
                       slope: float = 0.5,
                       intercept: float = -1024.0,
                       seed: int = 0,
                       image_types=None,
                       study_uid: Optional[str] = None,
                       series_number: int = 2,
                       description: str = 'synthetic CT') -> str:
    """An axial DICOM series of ``hu`` ``(Z, Y, X)`` with shuffled file names: slice ``k`` at
    ``positions[k]`` mm along S (default ``-k x spacing[0]``: DeepLesion's order, head first).
    ``image_types``: per-slice ImageType (e.g. a ``LOCALIZER``). Returns the series UID."""
    from pydicom.uid import CTImageStorage, generate_uid
    os.makedirs(folder, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study = study_uid or generate_uid()
    sz, sy, sx = spacing
    positions = -np.arange(len(hu)) * sz if positions is None else positions
    rng = np.random.default_rng(seed)
    for k in rng.permutation(len(hu)):
        ds = _ct_dataset(modality, study, series_uid, CTImageStorage)
        ds.SeriesNumber, ds.SeriesDescription = series_number, description
        ds.ImageType = (image_types[k] if image_types else ['ORIGINAL', 'PRIMARY', 'AXIAL'])
        ds.InstanceNumber = int(k) + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(positions[k])]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [float(sy), float(sx)]
        ds.SliceThickness = float(sz)
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, 'HU'
        ds.PixelData = np.round((hu[k] - intercept) / slope).astype(np.int16).tobytes()
        ds.save_as(osp.join(folder, f'{uuid.uuid4().hex[:12]}.dcm'), enforce_file_format=True)
    return series_uid


def write_secondary_capture(path: str, study_uid: str, size: int = 64) -> str:
    """A secondary capture (a screenshot: SOP class 1.2.840.10008.5.1.4.1.1.7, modality OT) in
    study ``study_uid``, as archives hold beside the CT series (dose reports, key images)."""
    from pydicom.uid import generate_uid
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    ds = _ct_dataset('OT', study_uid, generate_uid(), '1.2.840.10008.5.1.4.1.1.7')
    ds.SeriesNumber, ds.SeriesDescription, ds.ConversionType = 999, 'dose report', 'WSD'
    ds.Rows = ds.Columns = size
    ds.PixelRepresentation = 0
    ds.PixelData = np.zeros((size, size), np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_study(root: str, hu: np.ndarray, spacing=(2.0, 0.8, 0.8)) -> dict:
    """An archive's export of one study under ``root`` (``STUDY_20260101/...``): ``hu`` as a
    thin series (#2 'thin', in a nested folder), every second slice as a thick one (#3 'thick',
    twice the slice spacing), a localizer series (#1 'scout'), a secondary capture (#999) and a
    text file. Returns ``root`` and the series UIDs ``thin`` and ``thick``."""
    from pydicom.uid import generate_uid
    base = osp.join(root, 'STUDY_20260101')
    uid = generate_uid()
    thick_spacing = (spacing[0] * 2, ) + tuple(spacing[1:])
    thin = write_dicom_series(
        hu, spacing, osp.join(base, 'SER1', 'thin'), study_uid=uid, description='thin')
    thick = write_dicom_series(
        hu[::2],
        thick_spacing,
        osp.join(base, 'SER2'),
        study_uid=uid,
        series_number=3,
        description='thick')
    write_dicom_series(
        hu[:1],
        spacing,
        osp.join(base, 'SER0'),
        study_uid=uid,
        series_number=1,
        description='scout',
        image_types=[['ORIGINAL', 'PRIMARY', 'LOCALIZER']])
    write_secondary_capture(osp.join(base, 'SER9', 'sc.dcm'), uid)
    with open(osp.join(base, 'notes.txt'), 'w') as f:
        f.write('not DICOM')
    return dict(root=root, thin=thin, thick=thick)


def write_enhanced_ct(hu,
                      spacing,
                      path: str,
                      positions=None,
                      frame_order=None,
                      slope: float = 1.0,
                      intercept: float = -1024.0,
                      real_world_unit: Optional[str] = None) -> str:
    """An enhanced CT (one multi-frame file) of ``hu`` ``(Z, Y, X)``: frame ``i`` holds slice
    ``frame_order[i]`` (default: reversed, feet first) at ``positions`` as in
    :func:`write_dicom_series`; geometry and rescale in the functional groups, as scanners write
    them. ``real_world_unit``: add a Real World Value Mapping in that UCUM unit (e.g.
    ``'ml/100ml/s'`` for a perfusion map)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq
    from pydicom.uid import generate_uid
    sz, sy, sx = spacing
    n = len(hu)
    positions = -np.arange(n) * sz if positions is None else positions
    frame_order = list(range(n))[::-1] if frame_order is None else list(frame_order)
    ds = _ct_dataset('CT', generate_uid(), generate_uid(), '1.2.840.10008.5.1.4.1.1.2.1')
    ds.ImageType = ['ORIGINAL', 'PRIMARY', 'AXIAL', 'NONE']
    ds.SeriesNumber, ds.SeriesDescription = 3, 'synthetic enhanced CT'
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = hu.shape[1:]

    def item(**kw):
        d = Dataset()
        for k, v in kw.items():
            setattr(d, k, v)
        return d

    shared = item(
        PlaneOrientationSequence=Seq([item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]),
        PixelMeasuresSequence=Seq(
            [item(PixelSpacing=[float(sy), float(sx)], SliceThickness=float(sz))]),
        PixelValueTransformationSequence=Seq(
            [item(RescaleSlope=slope, RescaleIntercept=intercept, RescaleType='HU')]))
    if real_world_unit:
        unit = item(
            CodeValue=real_world_unit, CodingSchemeDesignator='UCUM', CodeMeaning=real_world_unit)
        shared.RealWorldValueMappingSequence = Seq([
            item(
                LUTExplanation='Regional Cerebral Blood Flow',
                LUTLabel='RCBF',
                RealWorldValueIntercept=-1024.0,
                RealWorldValueSlope=1.0,
                RealWorldValueFirstValueMapped=0,
                RealWorldValueLastValueMapped=4095,
                MeasurementUnitsCodeSequence=Seq([unit]))
        ])
    ds.SharedFunctionalGroupsSequence = Seq([shared])
    ds.PerFrameFunctionalGroupsSequence = Seq([
        item(
            PlanePositionSequence=Seq(
                [item(ImagePositionPatient=[0.0, 0.0, float(positions[k])])]),
            CTImageFrameTypeSequence=Seq([item(FrameType=['ORIGINAL', 'PRIMARY', 'AXIAL', 'NONE'])
                                          ])) for k in frame_order
    ])
    frames = np.stack([np.round((hu[k] - intercept) / slope) for k in frame_order])
    ds.PixelData = frames.astype(np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


#: Transfer syntaxes :func:`transcode` writes (names as pydicom's ``pydicom.uid`` constants).
TRANSFER_SYNTAXES = ('JPEGLosslessSV1', 'JPEG2000Lossless', 'JPEGLSLossless', 'RLELossless',
                     'DeflatedExplicitVRLittleEndian')


def transcode(src: str, dst: str, syntax: str) -> str:
    """Rewrite the DICOM file ``src`` as ``dst`` in transfer syntax ``syntax`` (one of
    :data:`TRANSFER_SYNTAXES`): the pixel data compressed by GDCM (python-gdcm), deflate written
    by pydicom; every other attribute kept."""
    if syntax == 'DeflatedExplicitVRLittleEndian':
        import pydicom
        from pydicom.uid import DeflatedExplicitVRLittleEndian
        ds = pydicom.dcmread(src)
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(dst, enforce_file_format=True)
        return dst
    import gdcm
    ts = {
        'JPEGLosslessSV1': gdcm.TransferSyntax.JPEGLosslessProcess14_1,
        'JPEG2000Lossless': gdcm.TransferSyntax.JPEG2000Lossless,
        'JPEGLSLossless': gdcm.TransferSyntax.JPEGLSLossless,
        'RLELossless': gdcm.TransferSyntax.RLELossless,
    }[syntax]
    reader = gdcm.ImageReader()
    reader.SetFileName(src)
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(ts))
    if not reader.Read():
        raise OSError(f'{src}: GDCM cannot read it')
    change.SetInput(reader.GetImage())
    if not change.Change():
        raise OSError(f'{src}: GDCM cannot transcode it to {syntax}')
    writer = gdcm.ImageWriter()
    writer.SetFileName(dst)
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    if not writer.Write():
        raise OSError(f'{dst}: GDCM cannot write it')
    return dst
