"""Annotation step of the synthetic DeepLesion: RECIST measured on a lesion's true key-slice mask
as a radiologist would, and the lesion's ``DL_info.csv`` row and truth entry."""
from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

from ...utils import mask_to_rle
from ...utils.hu import BONE_WINDOW, LUNG_WINDOW, SOFT_TISSUE_WINDOW
from .render import Shape


@dataclass(frozen=True)
class SeriesInfo:
    """What a ``DL_info.csv`` row says about its series."""
    name: str  # pppppp_ss_ee
    patient: int
    study: int
    series_id: int
    split: int  # 1 train, 2 val, 3 test
    first_slice: int
    num_slices: int
    pixel_mm: float
    slice_interval_mm: float
    image_size: int
    gender: str
    age: str
    region: str


def measure_recist(mask: np.ndarray) -> Optional[np.ndarray]:
    """RECIST on a binary mask: ``(4, 2)`` (x, y) endpoints of the longest diameter, then of the
    longest diameter perpendicular to it; None if the mask is too small to measure."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 4:
        return None
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    d = np.linalg.norm(hull[:, None] - hull[None], axis=-1)
    i, j = np.unravel_index(np.argmax(d), d.shape)
    p1, p2 = hull[i], hull[j]
    if d[i, j] < 2:
        return None
    u = (p2 - p1) / d[i, j]
    v = np.array([-u[1], u[0]])
    P = np.stack([xs, ys], 1).astype(np.float64) - p1
    pu, pv = P @ u, P @ v
    bins = np.round(pu).astype(int)
    best, ends = -1.0, None
    for b in np.unique(bins):
        sel = bins == b
        lo, hi = pv[sel].min(), pv[sel].max()
        if hi - lo > best:
            best = hi - lo
            ends = (p1 + b * u + lo * v, p1 + b * u + hi * v)
    return np.stack([p1, p2, ends[0], ends[1]])


def _fmt(vals, nd=3) -> str:
    return ', '.join(f'{v:.{nd}f}'.rstrip('0').rstrip('.') if isinstance(v, float) else str(v)
                     for v in vals)


def _dicom_window(lesion_type: int) -> Tuple[float, float]:
    if lesion_type == 5:
        return LUNG_WINDOW
    return BONE_WINDOW if lesion_type == 1 else SOFT_TISSUE_WINDOW


def annotate_lesion(rng, les: Shape, mask: np.ndarray, key_slice: int, lesion_index: int,
                    info: SeriesInfo, noisy_fraction: float) -> Optional[Tuple[dict, dict]]:
    """``(DL_info row, truth entry)`` of lesion ``les`` (the ``lesion_index``-th of its key
    slice) whose true key-slice mask is ``mask``; None if the mask is too small to measure. A share
    ``noisy_fraction`` of lesions gets a displaced measurement (``Possibly_noisy``), as
    annotation errors do."""
    recist = measure_recist(mask)
    if recist is None:
        return None
    size, px = info.image_size, info.pixel_mm
    noisy = rng.random() < noisy_fraction
    meas = recist.copy()
    if noisy:  # an annotation error: the measurement is displaced from the lesion
        meas += rng.uniform(15, 40, 2) * rng.choice([-1, 1], 2)
        meas = np.clip(meas, 0, size - 1)
    long_px = float(np.linalg.norm(meas[0] - meas[1]))
    short_px = float(np.linalg.norm(meas[2] - meas[3]))
    box = np.concatenate([meas.min(0) - 5, meas.max(0) + 5]).clip(0, size - 1)
    window = _dicom_window(les.lesion_type)
    row = {
        'File_name':
        f'{info.name}_{key_slice:03d}.png',
        'Patient_index':
        info.patient,
        'Study_index':
        info.study,
        'Series_ID':
        info.series_id,
        'Key_slice_index':
        key_slice,
        'Measurement_coordinates':
        _fmt([float(v) for v in (meas + 1).reshape(-1)]),
        'Bounding_boxes':
        _fmt([float(v) for v in box + 1]),
        'Lesion_diameters_Pixel_':
        _fmt([long_px, short_px], 4),
        'Normalized_lesion_location':
        _fmt([
            float((les.x / px + size / 2) / size),
            float((les.y / px + size / 2) / size),
            float(rng.uniform(0.2, 0.8))
        ], 6),
        'Coarse_lesion_type':
        -1 if info.split == 1 else les.lesion_type,
        'Possibly_noisy':
        int(noisy),
        'Slice_range':
        f'{info.first_slice}, {info.first_slice + info.num_slices - 1}',
        'Spacing_mm_px_':
        _fmt([px, px, info.slice_interval_mm], 6),
        'Image_size':
        f'{size}, {size}',
        'DICOM_windows':
        f'{int(window[0])}, {int(window[1])}',
        'Patient_gender':
        info.gender,
        'Patient_age':
        info.age,
        'Train_Val_Test':
        info.split
    }
    truth = dict(
        file_name=row['File_name'],
        lesion=lesion_index,
        mask=mask_to_rle(mask),
        true_type=les.lesion_type,
        region=info.region,
        long_diameter_mm=float(np.linalg.norm(recist[0] - recist[1]) * px),
        noisy=bool(noisy))
    return row, truth
