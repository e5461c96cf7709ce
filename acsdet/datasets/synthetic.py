"""Synthetic DeepLesion: CT phantoms and 3D lesions written in the exact DeepLesion layout.

``Images_png/<pppppp>_<ss>_<ee>/<kkk>.png`` (uint16 = HU + 32768), a complete ``DL_info.csv``
(18 columns, 1-based pixel coordinates, the official split column) and ``synthetic_truth.json``
holding each lesion's true key-slice mask (COCO RLE) so weak masks can be scored. Deterministic
for a seed. Anatomy per axial slice: air, body outline with subcutaneous fat, muscle, and by
region lungs with vessels, mediastinum, aorta, liver, kidneys, spleen, bowel gas, bladder, spine
and pelvic bones; every structure varies smoothly along z. Lesions are lobulated 3D ellipsoids of
3-60 mm long diameter in an organ, hypo- or hyper-dense; the key slice passes near their centre;
RECIST is measured on it as a radiologist would (the longest diameter, then the longest
diameter perpendicular to it) and the box is the RECIST extent padded by 5 px.
"""
import csv
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..utils import atomic_write, mask_to_rle
from .deeplesion_info import COLUMNS

THICKNESSES = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
THICKNESS_P = (0.08, 0.12, 0.15, 0.08, 0.12, 0.05, 0.40)
WINDOWS = {'lung': (-1350, 150), 'bone': (-500, 1300), 'soft': (-175, 275)}


@dataclass
class Shape:
    """An elliptic cylinder/ellipsoid in mm: centre (x, y, z), semi-axes (a, b, c), angle (rad).

    ``c`` = inf for structures running along z; ``grow`` scales (a, b) linearly with z (mm^-1);
    ``drift`` moves the centre per mm of z; ``lobes`` modulate the radius with angle.
    """
    name: str
    hu: float
    x: float
    y: float
    a: float
    b: float
    z: float = 0.0
    c: float = np.inf
    angle: float = 0.0
    grow: float = 0.0
    drift: Tuple[float, float] = (0.0, 0.0)
    lobes: Tuple[Tuple[float, float, float], ...] = ()  # (order k, amplitude, phase)
    lesion_type: int = 7
    relative: bool = False  # hu is added to what lies beneath (lesions)

    def section(self, z: float):
        """(cx, cy, a, b) of the cross-section at z, or None."""
        dz = z - self.z
        if np.isfinite(self.c):
            if abs(dz) >= self.c:
                return None
            f = np.sqrt(1 - (dz / self.c)**2)
        else:
            f = max(0.05, 1 + self.grow * dz)
        return self.x + self.drift[0] * dz, self.y + self.drift[1] * dz, self.a * f, self.b * f

    def coverage(self, z, xs, ys, px):
        """Soft (anti-aliased) coverage in [0, 1] on the grid ``xs`` (W,), ``ys`` (H,) in mm,
        restricted to the shape's bounding box: returns (coverage, (r0, r1, c0, c1)) or None."""
        sec = self.section(z)
        if sec is None:
            return None
        cx, cy, a, b = sec
        rmax = max(a, b) * (1 + sum(abs(lobe[1]) for lobe in self.lobes)) + 2 * px
        c0, c1 = np.searchsorted(xs, [cx - rmax, cx + rmax])
        r0, r1 = np.searchsorted(ys, [cy - rmax, cy + rmax])
        if c1 <= c0 or r1 <= r0:
            return None
        dx = xs[None, c0:c1] - cx
        dy = ys[r0:r1, None] - cy
        ca, sa = np.cos(self.angle), np.sin(self.angle)
        u, v = dx * ca + dy * sa, -dx * sa + dy * ca
        rho = np.sqrt((u / a)**2 + (v / b)**2)
        if self.lobes:
            phi = np.arctan2(v / b, u / a)
            rho = rho / (1 + sum(amp * np.cos(k * phi + ph) for k, amp, ph in self.lobes))
        # signed distance to the boundary in pixels, approximately; a 1-pixel linear ramp
        dist = (1 - rho) * min(a, b) / px
        return np.clip(dist + 0.5, 0, 1), (r0, r1, c0, c1)


def _organ_shapes(rng, region: str, body_a: float, body_b: float) -> List[Shape]:
    """Anatomy in mm around the body centre (x to the patient's left, y posterior)."""
    j = lambda s=0.06: 1 + rng.uniform(-s, s)  # noqa: E731
    A, B = body_a, body_b
    g = rng.uniform(-0.002, 0.002)
    shapes = [
        Shape('body', -100, 0, 0, A, B, grow=g, lesion_type=7),
        Shape(
            'muscle', 45, 0, 0.02 * B, A * 0.9 * j(0.03), B * 0.88 * j(0.03), grow=g, lesion_type=7)
    ]
    spine_y = 0.62 * B
    if region == 'chest':
        for side in (-1, 1):
            shapes.append(
                Shape(
                    'lung',
                    -850,
                    side * 0.45 * A,
                    -0.05 * B,
                    0.33 * A * j(),
                    0.62 * B * j(),
                    angle=side * 0.1,
                    grow=rng.uniform(-0.004, 0.004),
                    lesion_type=5))
        shapes += [
            Shape(
                'mediastinum',
                40,
                0.02 * A,
                -0.15 * B,
                0.22 * A * j(),
                0.42 * B * j(),
                lesion_type=3),
            Shape(
                'aorta',
                180 + rng.uniform(0, 80),
                0.08 * A,
                0.25 * B,
                11 * j(),
                11 * j(),
                drift=(0.0, -0.02),
                lesion_type=3)
        ]
    elif region == 'abdomen':
        shapes += [
            Shape(
                'liver',
                60 + rng.uniform(-10, 20),
                -0.38 * A,
                -0.05 * B,
                0.45 * A * j(),
                0.62 * B * j(),
                angle=0.3,
                grow=rng.uniform(-0.006, 0.002),
                lesion_type=4),
            Shape(
                'spleen',
                50,
                0.55 * A,
                0.25 * B,
                0.18 * A * j(),
                0.3 * B * j(),
                angle=-0.6,
                lesion_type=2),
            Shape('bowel', 35, 0.15 * A, -0.35 * B, 0.3 * A * j(), 0.3 * B * j(), lesion_type=2),
            Shape(
                'aorta',
                150 + rng.uniform(0, 80),
                0.05 * A,
                0.4 * B,
                10 * j(),
                10 * j(),
                lesion_type=2)
        ]
        for side in (-1, 1):
            shapes.append(
                Shape(
                    'kidney',
                    150 + rng.uniform(-20, 40),
                    side * 0.42 * A,
                    0.45 * B,
                    0.13 * A * j(),
                    0.22 * B * j(),
                    angle=side * 0.4,
                    c=rng.uniform(45, 70),
                    z=rng.uniform(-10, 10),
                    lesion_type=6))
        for _ in range(rng.integers(2, 5)):
            shapes.append(
                Shape(
                    'gas',
                    -900,
                    rng.uniform(-0.2, 0.5) * A,
                    rng.uniform(-0.5, -0.1) * B,
                    rng.uniform(4, 12),
                    rng.uniform(4, 10),
                    c=rng.uniform(8, 25),
                    z=rng.uniform(-30, 30),
                    lesion_type=2))
    else:  # pelvis
        shapes += [
            Shape(
                'bladder',
                10,
                0,
                -0.3 * B,
                0.25 * A * j(),
                0.3 * B * j(),
                c=rng.uniform(50, 80),
                lesion_type=8),
            Shape('pelvic fat', -60, 0, 0.1 * B, 0.3 * A, 0.25 * B, lesion_type=8)
        ]
        for side in (-1, 1):
            shapes.append(
                Shape(
                    'iliac',
                    550,
                    side * 0.55 * A,
                    0.25 * B,
                    0.18 * A * j(),
                    0.35 * B * j(),
                    angle=side * 0.5,
                    lesion_type=1))
            shapes.append(
                Shape(
                    'iliac marrow',
                    200,
                    side * 0.55 * A,
                    0.25 * B,
                    0.13 * A,
                    0.28 * B,
                    angle=side * 0.5,
                    lesion_type=1))
    shapes += [
        Shape('vertebra', 650, 0, spine_y, 17 * j(), 15 * j(), lesion_type=1),
        Shape('vertebra marrow', 220, 0, spine_y, 13, 11, lesion_type=1)
    ]
    return shapes


def _vessels(rng, shapes: List[Shape]) -> List[Shape]:
    """Small contrast vessels running roughly along z inside lungs and liver."""
    out = []
    for s in shapes:
        if s.name in ('lung', 'liver'):
            for _ in range(rng.integers(6, 14)):
                r, t = np.sqrt(rng.uniform(0, 0.8)), rng.uniform(0, 2 * np.pi)
                out.append(
                    Shape(
                        'vessel',
                        40 if s.name == 'lung' else 160,
                        s.x + r * s.a * np.cos(t),
                        s.y + r * s.b * np.sin(t),
                        rng.uniform(1.0, 3.0),
                        rng.uniform(1.0, 3.0),
                        drift=tuple(rng.uniform(-0.3, 0.3, 2)),
                        lesion_type=s.lesion_type))
    return out


_LESION_ORGANS = {
    'chest': ['lung', 'lung', 'lung', 'mediastinum', 'muscle', 'vertebra marrow'],
    'abdomen': ['liver', 'liver', 'liver', 'kidney', 'spleen', 'bowel', 'muscle'],
    'pelvis': ['bladder', 'pelvic fat', 'iliac marrow', 'muscle']
}


def _make_lesion(rng, organ: Shape, z: float, px: float, size_mm=(3.0, 60.0)) -> Shape:
    sec = organ.section(z)
    cx, cy, a, b = sec
    room = min(a, b)
    long_d = float(np.exp(rng.uniform(np.log(size_mm[0]), np.log(size_mm[1]))))
    long_d = min(long_d, max(3.0, 1.4 * room))
    long_d = max(long_d, 3.0, 3.5 * px)
    ratio = rng.uniform(0.5, 1.0)
    r, t = np.sqrt(rng.uniform(0, 0.4)), rng.uniform(0, 2 * np.pi)
    x, y = cx + r * a * np.cos(t) * 0.7, cy + r * b * np.sin(t) * 0.7
    if organ.name == 'lung':
        hu = rng.uniform(-50, 60) - organ.hu  # solid nodule in air
    elif organ.name in ('vertebra marrow', 'iliac marrow'):
        hu = rng.choice([-1, 1]) * rng.uniform(120, 300)  # lytic or sclerotic
    else:
        hu = rng.choice([-1, 1], p=[0.7, 0.3]) * rng.uniform(25, 80)
    lobes = tuple((k, rng.uniform(0, 0.12), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    return Shape(
        'lesion',
        float(hu),
        x,
        y,
        long_d / 2,
        long_d / 2 * ratio,
        z=z + rng.uniform(-0.15, 0.15) * long_d / 2,
        c=long_d / 2 * rng.uniform(0.6, 1.1),
        angle=rng.uniform(0, np.pi),
        lobes=lobes,
        lesion_type=organ.lesion_type,
        relative=True)


def render_slice(shapes: Sequence[Shape],
                 z: float,
                 size: int,
                 px: float,
                 rng,
                 noise_hu: float = 12.0) -> np.ndarray:
    """HU image (float32, ``size`` x ``size``) of the axial slice at ``z`` mm."""
    coords = (np.arange(size) - (size - 1) / 2) * px
    img = np.full((size, size), -1000.0, np.float32)
    for s in shapes:
        cov = s.coverage(z, coords, coords, px)
        if cov is None:
            continue
        c, (r0, r1, c0, c1) = cov
        patch = img[r0:r1, c0:c1]
        target = patch + s.hu if s.relative else s.hu
        patch += (target - patch) * c
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    img += rng.normal(0, noise_hu, img.shape).astype(np.float32)
    return img


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


def _assign_splits(n_patients: int, rng) -> Dict[int, int]:
    order = rng.permutation(n_patients) + 1
    n_val = max(1, round(0.15 * n_patients)) if n_patients >= 3 else 0
    n_test = max(1, round(0.15 * n_patients)) if n_patients >= 3 else 0
    split = {}
    for k, p in enumerate(order):
        split[int(p)] = 2 if k < n_val else 3 if k < n_val + n_test else 1
    return split


def generate_series(index: int,
                    seed: int,
                    image_size: int,
                    context_mm: float,
                    patient: int,
                    study: int,
                    split: int,
                    out_dir: str,
                    noisy_fraction: float = 0.03,
                    lesion_mm: Tuple[float, float] = (3.0, 60.0)):
    """Write one series' PNGs; return its CSV rows (dicts) and truth entries."""
    rng = np.random.default_rng([seed, index])
    px = float(rng.uniform(0.6, 0.98)) * 512 / image_size
    t = float(rng.choice(THICKNESSES, p=THICKNESS_P))
    region = str(rng.choice(['chest', 'abdomen', 'pelvis'], p=[0.4, 0.45, 0.15]))
    body_a = rng.uniform(0.36, 0.44) * image_size * px
    body_b = body_a * rng.uniform(0.62, 0.78)
    shapes = _organ_shapes(rng, region, body_a, body_b)
    shapes += _vessels(rng, shapes)
    by_name = {}
    for s in shapes:
        by_name.setdefault(s.name, []).append(s)

    n_keys = 1 if rng.random() < 0.7 else 2
    key_z = [0.0] if n_keys == 1 else [-rng.uniform(12, 25), rng.uniform(12, 25)]
    s_first = int(rng.integers(1, 40))
    z_lo = min(key_z) - context_mm
    n_slices = int(round((max(key_z) + context_mm - z_lo) / t)) + 1
    key_idx = [s_first + int(round((z - z_lo) / t)) for z in key_z]
    key_z = [z_lo + (k - s_first) * t for k in key_idx]  # on the slice grid

    lesions = []  # (key index, shape)
    for k, z in zip(key_idx, key_z):
        n_les = int(rng.choice([1, 2, 3], p=[0.7, 0.22, 0.08]))
        for _ in range(n_les):
            organ_name = str(rng.choice(_LESION_ORGANS[region]))
            organ = next(
                (o
                 for o in rng.permutation(by_name.get(organ_name, [])) if o.section(z) is not None),
                None)
            if organ is None:
                organ = by_name['muscle'][0]
            lesions.append((k, _make_lesion(rng, organ, z, px, lesion_mm)))
    all_shapes = shapes + [s for _, s in lesions]

    series = f'{patient:06d}_{study:02d}_{index % 100:02d}'
    sdir = osp.join(out_dir, 'Images_png', series)
    os.makedirs(sdir, exist_ok=True)
    coords = (np.arange(image_size) - (image_size - 1) / 2) * px
    rows, truth = [], []
    for n in range(n_slices):
        z = z_lo + n * t
        img = render_slice(all_shapes, z, image_size, px, rng)
        png = np.clip(np.round(img) + 32768, 0, 65535).astype(np.uint16)
        if not cv2.imwrite(osp.join(sdir, f'{s_first + n:03d}.png'), png):
            raise OSError(f'cannot write {sdir}/{s_first + n:03d}.png')
    gender = str(rng.choice(['M', 'F']))
    age = '' if rng.random() < 0.05 else str(int(rng.integers(20, 90)))
    for k, les in lesions:
        z = key_z[key_idx.index(k)]
        cov = les.coverage(z, coords, coords, px)
        mask = np.zeros((image_size, image_size), bool)
        if cov is not None:
            c, (r0, r1, c0, c1) = cov
            mask[r0:r1, c0:c1] = c >= 0.5
        recist = measure_recist(mask)
        if recist is None:
            continue
        noisy = rng.random() < noisy_fraction
        meas = recist.copy()
        if noisy:  # an annotation error: the measurement is displaced from the lesion
            meas += rng.uniform(15, 40, 2) * rng.choice([-1, 1], 2)
            meas = np.clip(meas, 0, image_size - 1)
        long_px = float(np.linalg.norm(meas[0] - meas[1]))
        short_px = float(np.linalg.norm(meas[2] - meas[3]))
        box = np.concatenate([meas.min(0) - 5, meas.max(0) + 5]).clip(0, image_size - 1)
        window = WINDOWS['lung' if les.lesion_type == 5 else 'bone' if les.lesion_type ==
                         1 else 'soft']
        true_type = les.lesion_type
        row = {
            'File_name':
            f'{series}_{k:03d}.png',
            'Patient_index':
            patient,
            'Study_index':
            study,
            'Series_ID':
            index % 100,
            'Key_slice_index':
            k,
            'Measurement_coordinates':
            _fmt([float(v) for v in (meas + 1).reshape(-1)]),
            'Bounding_boxes':
            _fmt([float(v) for v in box + 1]),
            'Lesion_diameters_Pixel_':
            _fmt([long_px, short_px], 4),
            'Normalized_lesion_location':
            _fmt([
                float((les.x / px + image_size / 2) / image_size),
                float((les.y / px + image_size / 2) / image_size),
                float(rng.uniform(0.2, 0.8))
            ], 6),
            'Coarse_lesion_type':
            -1 if split == 1 else true_type,
            'Possibly_noisy':
            int(noisy),
            'Slice_range':
            f'{s_first}, {s_first + n_slices - 1}',
            'Spacing_mm_px_':
            _fmt([px, px, t], 6),
            'Image_size':
            f'{image_size}, {image_size}',
            'DICOM_windows':
            f'{window[0]}, {window[1]}',
            'Patient_gender':
            gender,
            'Patient_age':
            age,
            'Train_Val_Test':
            split
        }
        rows.append(row)
        truth.append(
            dict(
                file_name=row['File_name'],
                lesion=len([r for r in rows if r['File_name'] == row['File_name']]) - 1,
                mask=mask_to_rle(mask),
                true_type=true_type,
                region=region,
                long_diameter_mm=float(np.linalg.norm(recist[0] - recist[1]) * px),
                noisy=bool(noisy)))
    return rows, truth


def make_synthetic_deeplesion(out_dir: str,
                              num_series: int,
                              seed: int = 0,
                              image_size: int = 512,
                              context_mm: float = 30.0,
                              progress: bool = False,
                              noisy_fraction: float = 0.03,
                              lesion_mm: Tuple[float, float] = (3.0, 60.0)) -> dict:
    """Write a synthetic DeepLesion of ``num_series`` series into ``out_dir``; return a summary.

    ``context_mm``: slices kept on each side of the key slices; ``noisy_fraction``: share of
    lesions marked ``Possibly_noisy`` (their measurement is displaced, as annotation errors are);
    ``lesion_mm``: range of the lesions' long diameters (log-uniform; DeepLesion: 3-60 mm).
    """
    rng = np.random.default_rng(seed)
    n_patients = max(1, (num_series + 1) // 2)
    splits = _assign_splits(n_patients, rng)
    rows, truth = [], []
    it = range(num_series)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc='series', unit='series')
    for i in it:
        patient = i // 2 + 1
        r, t = generate_series(i + 1, seed, image_size, context_mm, patient, i % 2 + 1,
                               splits[patient], out_dir, noisy_fraction, lesion_mm)
        rows += r
        truth += t
    for line, (row, tr) in enumerate(zip(rows, truth), start=2):
        tr['line'] = line
    atomic_write(osp.join(out_dir, 'DL_info.csv'), lambda f: _write_csv(f, rows), newline='')
    atomic_write(
        osp.join(out_dir, 'synthetic_truth.json'),
        lambda f: json.dump(dict(seed=seed, image_size=image_size, lesions=truth), f))
    return dict(
        series=num_series,
        key_slices=len({r['File_name']
                        for r in rows}),
        lesions=len(rows),
        noisy=sum(r['Possibly_noisy'] for r in rows),
        per_split={
            s: sum(r['Train_Val_Test'] == k for r in rows)
            for k, s in ((1, 'train'), (2, 'val'), (3, 'test'))
        })


def _write_csv(f, rows):
    w = csv.DictWriter(f, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows(rows)
