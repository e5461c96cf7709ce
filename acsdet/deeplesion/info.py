"""Parser of DeepLesion's ``DL_info.csv``: typed lesion records, 0-based pixel coordinates.

One row per lesion, 18 columns: ``File_name`` (``pppppp_ss_ee_kkk.png``), patient, study, series
and key-slice indices, ``Measurement_coordinates`` (RECIST: long-axis ends x, y, x, y, then the
short-axis ends), ``Bounding_boxes`` (x1, y1, x2, y2: the RECIST extent padded by 5 px, inclusive
pixels), ``Lesion_diameters_Pixel_``, ``Normalized_lesion_location``, ``Coarse_lesion_type``
(1 bone ... 8 pelvis, -1 unlabelled), ``Possibly_noisy``, ``Slice_range``, ``Spacing_mm_px_``
(x, y, slice interval), ``Image_size`` (w, h), ``DICOM_windows``, gender, age and
``Train_Val_Test`` (1 train, 2 val, 3 test). A key slice with several lesions repeats its
``File_name``; :func:`group_by_key_slice` collects them. Multi-valued fields are quoted,
comma-separated strings. Coordinates in the file are 1-based pixels; records hold them 0-based
(x = column, y = row; boxes stay inclusive, see :mod:`acsdet.deeplesion.boxes`). A malformed or
duplicated row is reported (line number, field, reason) and skipped; it never aborts the file.
A UTF-8 byte-order mark (as spreadsheet programs write) is accepted.
"""
import csv
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .naming import key_slice_path, key_slice_relpath  # noqa: F401  (part of this format)

# The coarse lesion types and splits (Coarse_lesion_type, Train_Val_Test)
LESION_TYPES = {
    1: 'bone',
    2: 'abdomen',
    3: 'mediastinum',
    4: 'liver',
    5: 'lung',
    6: 'kidney',
    7: 'soft tissue',
    8: 'pelvis',
    -1: 'unlabelled'
}
SPLITS = {1: 'train', 2: 'val', 3: 'test'}

COLUMNS = ('File_name', 'Patient_index', 'Study_index', 'Series_ID', 'Key_slice_index',
           'Measurement_coordinates', 'Bounding_boxes', 'Lesion_diameters_Pixel_',
           'Normalized_lesion_location', 'Coarse_lesion_type', 'Possibly_noisy', 'Slice_range',
           'Spacing_mm_px_', 'Image_size', 'DICOM_windows', 'Patient_gender', 'Patient_age',
           'Train_Val_Test')


@dataclass(frozen=True)
class LesionRecord:
    """One lesion (one row of ``DL_info.csv``); pixel coordinates 0-based, ``(x, y)``."""
    line: int  # line number in the CSV file (the header is line 1)
    file_name: str  # 'pppppp_ss_ee_kkk.png'
    patient: int
    study: int
    series: int
    key_slice: int
    recist: np.ndarray = field(repr=False)  # (4, 2): long-axis ends, then short-axis ends
    bbox: np.ndarray = field(repr=False)  # (4,): x1, y1, x2, y2
    diameters_px: Tuple[float, float]  # long, short
    location: Optional[Tuple[float, float, float]]
    lesion_type: int  # 1..8, -1 unlabelled
    noisy: bool
    slice_range: Tuple[int, int]
    spacing: Optional[Tuple[float, float]]  # mm per pixel (x, y)
    slice_interval: Optional[float]  # mm between slices
    image_size: Tuple[int, int]  # (width, height)
    window: Optional[Tuple[float, float]]  # DICOM window (min, max) HU
    gender: Optional[str]
    age: Optional[float]
    split: Optional[int]  # 1 train, 2 val, 3 test

    @property
    def series_dir(self) -> str:
        """``'pppppp_ss_ee'``, the folder of the series under ``Images_png/``."""
        return self.file_name.rsplit('_', 1)[0]

    @property
    def key_slice_relpath(self) -> str:
        """``'pppppp_ss_ee/kkk.png'``: the file name with its last '_' replaced by '/'."""
        return key_slice_relpath(self.file_name)

    @property
    def long_diameter_mm(self) -> Optional[float]:
        return None if self.spacing is None else self.diameters_px[0] * self.spacing[0]


@dataclass(frozen=True)
class ParseError:
    line: int
    field: str
    message: str

    def __str__(self):
        return f'line {self.line}, field {self.field}: {self.message}'


class _FieldError(ValueError):

    def __init__(self, field_name, message):
        super().__init__(message)
        self.field = field_name


def _raw(row, name, optional):
    """The field's stripped text; '' for a missing optional field, else an error naming it."""
    raw = (row.get(name) or '').strip()
    if not raw and not optional:
        raise _FieldError(name, 'missing value')
    return raw


def _floats(row, name, n, optional=False):
    raw = _raw(row, name, optional)
    if not raw:
        return None
    try:
        vals = tuple(float(v) for v in raw.replace(';', ',').split(','))
    except ValueError:
        raise _FieldError(name, f'not a list of numbers: {raw!r}') from None
    if len(vals) != n:
        raise _FieldError(name, f'expected {n} numbers, got {len(vals)}: {raw!r}')
    if not all(np.isfinite(vals)):
        raise _FieldError(name, f'non-finite number in {raw!r}')
    return vals


def _int(row, name, optional=False):
    raw = _raw(row, name, optional)
    if not raw:
        return None
    try:
        f = float(raw)
    except ValueError:
        raise _FieldError(name, f'not an integer: {raw!r}') from None
    if f != int(f):
        raise _FieldError(name, f'not an integer: {raw!r}')
    return int(f)


def parse_row(row: Dict[str, str], line: int) -> LesionRecord:
    """One CSV row (a dict by column name) to a record; raises ``_FieldError`` naming the field."""
    name = (row.get('File_name') or '').strip()
    parts = name[:-4].split('_') if name.endswith('.png') else []
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise _FieldError('File_name', f'expected pppppp_ss_ee_kkk.png, got {name!r}')
    patient, study, series = _int(row,
                                  'Patient_index'), _int(row,
                                                         'Study_index'), _int(row, 'Series_ID')
    key = _int(row, 'Key_slice_index')
    if tuple(int(p) for p in parts) != (patient, study, series, key):
        raise _FieldError(
            'File_name', f'{name!r} disagrees with the patient/study/series/key-slice '
            f'columns ({patient}, {study}, {series}, {key})')
    recist = np.array(_floats(row, 'Measurement_coordinates', 8)).reshape(4, 2) - 1.0
    bbox = np.array(_floats(row, 'Bounding_boxes', 4)) - 1.0
    if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
        raise _FieldError(
            'Bounding_boxes', f'zero-size or inverted box (needs x2 > x1 and y2 > y1): '
            f'{row["Bounding_boxes"]!r}')
    diam = _floats(row, 'Lesion_diameters_Pixel_', 2)
    if min(diam) < 0:
        raise _FieldError('Lesion_diameters_Pixel_', 'negative diameter')
    loc = _floats(row, 'Normalized_lesion_location', 3, optional=True)
    ltype = _int(row, 'Coarse_lesion_type')
    if ltype not in LESION_TYPES:
        raise _FieldError('Coarse_lesion_type', f'unknown lesion type {ltype}')
    noisy = _int(row, 'Possibly_noisy', optional=True)
    if noisy not in (None, 0, 1):
        raise _FieldError('Possibly_noisy', f'expected 0 or 1, got {noisy}')
    srange = _floats(row, 'Slice_range', 2)
    srange = (int(srange[0]), int(srange[1]))
    if not srange[0] <= key <= srange[1]:
        raise _FieldError('Slice_range', f'key slice {key} outside {srange}')
    spacing = _floats(row, 'Spacing_mm_px_', 3, optional=True)
    size = _floats(row, 'Image_size', 2)
    if min(size) < 1:
        raise _FieldError('Image_size', f'not a positive size: {row["Image_size"]!r}')
    window = _floats(row, 'DICOM_windows', 2, optional=True)
    gender = (row.get('Patient_gender') or '').strip() or None
    age_raw = (row.get('Patient_age') or '').strip()
    try:
        age = float(age_raw) if age_raw else None
    except ValueError:
        raise _FieldError('Patient_age', f'not a number: {age_raw!r}') from None
    split = _int(row, 'Train_Val_Test', optional=True)
    if split not in (None, 1, 2, 3):
        raise _FieldError('Train_Val_Test', f'expected 1, 2 or 3, got {split}')
    sp = None if spacing is None or spacing[0] <= 0 else (spacing[0], spacing[1])
    interval = None if spacing is None or spacing[2] <= 0 else spacing[2]
    return LesionRecord(line, name,
                        patient, study, series, key, recist, bbox, tuple(diam), loc, ltype,
                        bool(noisy), srange, sp, interval, (int(size[0]), int(size[1])), window,
                        gender, age, split)


def read_dl_info(path: str) -> Tuple[List[LesionRecord], List[ParseError]]:
    """All well-formed rows of a ``DL_info.csv`` and the errors of the malformed ones."""
    records, errors = [], []
    first_line = {}  # (File_name, box, RECIST) -> line of its first row
    with open(path, newline='', encoding='utf-8-sig') as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f'{path}: not a DL_info.csv, missing columns {missing}')
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                errors.append(ParseError(line, '<row>', f'expected {len(COLUMNS)} columns'))
                continue
            try:
                rec = parse_row(row, line)
            except _FieldError as e:
                errors.append(ParseError(line, e.field, str(e)))
                continue
            same = (rec.file_name, tuple(rec.bbox), tuple(rec.recist.reshape(-1)))
            if same in first_line:
                errors.append(
                    ParseError(
                        line, '<row>', f'duplicate of line {first_line[same]} (same '
                        'File_name, Bounding_boxes and Measurement_coordinates)'))
                continue
            first_line[same] = line
            records.append(rec)
    return records, errors


def group_by_key_slice(records: List[LesionRecord]) -> 'OrderedDict[str, List[LesionRecord]]':
    """Lesions by key slice (``File_name``), in file order."""
    groups: 'OrderedDict[str, List[LesionRecord]]' = OrderedDict()
    for r in records:
        groups.setdefault(r.file_name, []).append(r)
    return groups


def series_geometry(path: str, series_dir: str) -> Tuple[float, float]:
    """``(pixel spacing, slice interval)`` mm of series ``series_dir`` (``pppppp_ss_ee``) from the
    first valid row of ``DL_info.csv`` at ``path``; a ``ValueError`` naming the file otherwise."""
    records, _ = read_dl_info(path)
    for r in records:
        if r.series_dir == series_dir and r.spacing and r.slice_interval:
            return float(r.spacing[0]), float(r.slice_interval)
    raise ValueError(f'{path}: no row of series {series_dir} with a valid Spacing_mm_px_')
