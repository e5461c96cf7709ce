"""Synthetic DeepLesion, writing step: series rendered (:mod:`.render`) and annotated
(:mod:`.annotate`) into the exact DeepLesion layout.

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
from typing import Dict, Tuple

import cv2
import numpy as np

from ...deeplesion.info import COLUMNS
from ...utils import atomic_write
from .annotate import SeriesInfo, annotate_lesion
from .render import LESION_ORGANS, make_lesion, organ_shapes, render_slice, vessels

THICKNESSES = (0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0)
THICKNESS_P = (0.08, 0.12, 0.15, 0.08, 0.12, 0.05, 0.40)


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
                    lesion_mm: Tuple[float, float] = (3.0, 60.0),
                    lesion_maps: bool = False):
    """Write one series' PNGs; return its CSV rows (dicts) and truth entries. ``lesion_maps``:
    also every lesion in 3D, annotated or not (:func:`write_lesion_map`)."""
    rng = np.random.default_rng([seed, index])
    px = float(rng.uniform(0.6, 0.98)) * 512 / image_size
    t = float(rng.choice(THICKNESSES, p=THICKNESS_P))
    region = str(rng.choice(['chest', 'abdomen', 'pelvis'], p=[0.4, 0.45, 0.15]))
    body_a = rng.uniform(0.36, 0.44) * image_size * px
    body_b = body_a * rng.uniform(0.62, 0.78)
    shapes = organ_shapes(rng, region, body_a, body_b)
    shapes += vessels(rng, shapes)
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
            organ_name = str(rng.choice(LESION_ORGANS[region]))
            organ = next(
                (o
                 for o in rng.permutation(by_name.get(organ_name, [])) if o.section(z) is not None),
                None)
            if organ is None:
                organ = by_name['muscle'][0]
            lesions.append((k, make_lesion(rng, organ, z, px, lesion_mm)))
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
    if lesion_maps:  # no random draws: the data stay the same with or without the maps
        write_lesion_map(sdir, osp.join(out_dir, LESION_MAPS,
                                        f'{series}.nii.gz'), [les for _, les in lesions],
                         [z_lo + n * t for n in range(n_slices)], coords, px, t)
    gender = str(rng.choice(['M', 'F']))
    age = '' if rng.random() < 0.05 else str(int(rng.integers(20, 90)))
    info = SeriesInfo(series, patient, study, index % 100, split, s_first, n_slices, px, t,
                      image_size, gender, age, region)
    for k, les in lesions:
        z = key_z[key_idx.index(k)]
        cov = les.coverage(z, coords, coords, px)
        mask = np.zeros((image_size, image_size), bool)
        if cov is not None:
            c, (r0, r1, c0, c1) = cov
            mask[r0:r1, c0:c1] = c >= 0.5
        les_index = sum(r['File_name'] == f'{series}_{k:03d}.png' for r in rows)
        out = annotate_lesion(rng, les, mask, k, les_index, info, noisy_fraction)
        if out is not None:
            rows.append(out[0])
            truth.append(out[1])
    return rows, truth


LESION_MAPS = 'lesions_3d'


def write_lesion_map(series_dir: str, path: str, lesions, z_mm, coords, px: float,
                     t: float) -> None:
    """The label map of a series' lesions (lesion ``i`` = the ``i``-th, 1-based; a voxel at
    least half covered belongs to it, the first lesion keeping a shared voxel), in the
    geometry acsdet reads the PNG series folder in: the 3D ground truth of
    ``tools/froc3d_eval.py --gt-label-maps``."""
    import SimpleITK as sitk

    from ...io import read_ct
    from ...io.ct_volume import image_in_volume_geometry
    from ...utils import atomic_save
    size = len(coords)
    labels = np.zeros((len(z_mm), size, size), np.uint16)
    for i, les in enumerate(lesions, start=1):
        for n, z in enumerate(z_mm):
            cov = les.coverage(z, coords, coords, px)
            if cov is not None:
                c, (r0, r1, c0, c1) = cov
                region = labels[n, r0:r1, c0:c1]
                region[(c >= 0.5) & (region == 0)] = i
    vol = read_ct(series_dir, spacing=px, slice_interval=t)
    os.makedirs(osp.dirname(path), exist_ok=True)
    image = image_in_volume_geometry(labels, vol)
    atomic_save(path, lambda tmp: sitk.WriteImage(image, tmp, True), '.nii.gz')


def make_synthetic_deeplesion(out_dir: str,
                              num_series: int,
                              seed: int = 0,
                              image_size: int = 512,
                              context_mm: float = 30.0,
                              progress: bool = False,
                              noisy_fraction: float = 0.03,
                              lesion_mm: Tuple[float, float] = (3.0, 60.0),
                              lesion_maps: bool = False) -> dict:
    """Write a synthetic DeepLesion of ``num_series`` series into ``out_dir``; return a summary.

    ``context_mm``: slices kept on each side of the key slices; ``noisy_fraction``: share of
    lesions marked ``Possibly_noisy`` (their measurement is displaced, as annotation errors are);
    ``lesion_mm``: range of the lesions' long diameters (log-uniform; DeepLesion: 3-60 mm);
    ``lesion_maps``: also ``lesions_3d/<series>.nii.gz``, every lesion of a series in 3D (the
    same images and annotations either way).
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
                               splits[patient], out_dir, noisy_fraction, lesion_mm, lesion_maps)
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
