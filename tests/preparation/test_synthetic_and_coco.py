"""Synthetic DeepLesion generator and the COCO converter with GrabCut weak masks."""
import csv
import hashlib
import json
import os

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from acsdet.deeplesion.info import COLUMNS, group_by_key_slice, read_dl_info
from acsdet.preparation.deeplesion_coco import convert_deeplesion
from acsdet.preparation.weak_masks import ellipse_mask
from acsdet.testing.synthetic import make_synthetic_deeplesion, measure_recist
from acsdet.utils.hu import window_to_uint8


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth')
    summary = make_synthetic_deeplesion(
        str(root), num_series=8, seed=5, image_size=160, context_mm=6, noisy_fraction=0.5)
    return root, summary


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            h.update(f.encode())
            with open(os.path.join(dirpath, f), 'rb') as fh:
                h.update(fh.read())
    return h.hexdigest()


def test_generator_layout_encoding_and_determinism(synth, tmp_path):
    root, summary = synth
    records, errors = read_dl_info(str(root / 'DL_info.csv'))
    assert errors == [] and len(records) == summary['lesions'] > 8
    with open(root / 'DL_info.csv') as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    assert summary['noisy'] == sum(r.noisy for r in records) > 0
    assert {r.split for r in records} == {1, 2, 3}
    assert all(r.lesion_type == -1 for r in records if r.split == 1)
    assert all(1 <= r.lesion_type <= 8 for r in records if r.split != 1)
    assert all(0.6 <= r.slice_interval <= 5 for r in records)
    for r in records:
        series = root / 'Images_png' / r.series_dir
        names = sorted(os.listdir(series))
        assert names[0] == f'{r.slice_range[0]:03d}.png' and names[
            -1] == f'{r.slice_range[1]:03d}.png'
        png = cv2.imread(str(series / f'{r.key_slice:03d}.png'), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16 and png.shape == (160, 160)
        hu = png.astype(np.int32) - 32768
        assert hu.min() < -900 and hu.max() > 100  # air outside the body, bone inside
        # box = RECIST extent padded by 5 px (clipped to the image)
        ext = np.concatenate([r.recist.min(0) - 5, r.recist.max(0) + 5]).clip(0, 159)
        np.testing.assert_allclose(r.bbox, ext, atol=2e-3)
        assert r.diameters_px[0] >= r.diameters_px[1] - 1e-3
    other = tmp_path / 'again'
    make_synthetic_deeplesion(
        str(other), num_series=8, seed=5, image_size=160, context_mm=6, noisy_fraction=0.5)
    assert _digest(other) == _digest(root)


def test_lesion_maps_leave_the_data_as_it_was_and_hold_every_annotated_lesion(synth, tmp_path):
    import shutil

    import SimpleITK as sitk
    root, _ = synth
    maps = tmp_path / 'maps'
    make_synthetic_deeplesion(
        str(maps),
        num_series=8,
        seed=5,
        image_size=160,
        context_mm=6,
        noisy_fraction=0.5,
        lesion_maps=True)
    shutil.move(str(maps / 'lesions_3d'), str(tmp_path / 'lesions_3d'))
    assert _digest(maps) == _digest(root)  # the same images, CSV and truth
    records, _ = read_dl_info(str(root / 'DL_info.csv'))
    for r in records:
        if r.noisy:  # its marks are displaced on purpose
            continue
        labels = sitk.GetArrayFromImage(
            sitk.ReadImage(str(tmp_path / 'lesions_3d' / f'{r.series_dir}.nii.gz')))
        assert labels.shape == (r.slice_range[1] - r.slice_range[0] + 1, 160, 160)
        x, y = np.round(r.recist.mean(0)).astype(int)  # the lesion's middle on its key slice
        assert labels[r.key_slice - r.slice_range[0], y, x] > 0, r.file_name


def test_recist_measurement_on_a_known_ellipse():
    mask = np.zeros((100, 100), np.uint8)
    cv2.ellipse(mask, (50, 50), (30, 12), 30, 0, 360, 1, -1)
    rec = measure_recist(mask.astype(bool))
    long_len = np.linalg.norm(rec[0] - rec[1])
    short_len = np.linalg.norm(rec[2] - rec[3])
    assert long_len == pytest.approx(60, abs=2) and short_len == pytest.approx(24, abs=2)
    u, v = rec[1] - rec[0], rec[3] - rec[2]
    assert abs(np.dot(u, v)) / (np.linalg.norm(u) * np.linalg.norm(v)) < 0.05  # perpendicular
    # the flat tips of a pixelised ellipse leave a few degrees of play in the longest chord
    assert np.degrees(np.arctan2(u[1], u[0])) % 180 == pytest.approx(30, abs=5)


def test_window_is_clipped_not_wrapped():
    hu = np.array([[-3000, -1024, 0, 2050, 5000]])
    np.testing.assert_array_equal(window_to_uint8(hu, (-1024, 2050)), [[0, 0, 85, 255, 255]])


def test_converter_on_synthetic(synth, tmp_path):
    root, summary = synth
    out = tmp_path / 'coco'
    s = convert_deeplesion(str(root), str(out), workers=1)
    assert s.total_lesions == summary['lesions'] and not s.skipped
    records, _ = read_dl_info(str(root / 'DL_info.csv'))
    truth = {
        t['line']: t
        for t in json.loads((root / 'synthetic_truth.json').read_text())['lesions']
    }
    seen = {}
    for split in ('train', 'val', 'test'):
        coco = COCO(str(out / f'deeplesion_{split}.json'))
        for ann in coco.dataset['annotations']:
            seen[ann['csv_line']] = ann
            img = coco.imgs[ann['image_id']]
            assert img['split'] == split and img['file_name'].endswith(
                f'/{img["key_slice"]:03d}.png')
            mask = coco.annToMask(ann).astype(bool)  # RLE round trip through pycocotools
            assert mask.sum() == ann['area'] > 0
            x, y, w, h = ann['bbox']
            ys, xs = np.nonzero(mask)
            assert xs.min() >= np.floor(x) and xs.max() <= np.ceil(x + w)  # inside the box
            assert ys.min() >= np.floor(y) and ys.max() <= np.ceil(y + h)
            rec = np.array(ann['recist']).reshape(4, 2)
            centre = np.round(rec.mean(0)).astype(int)
            assert mask[centre[1], centre[0]]  # holds the RECIST cross
            for px, py in np.round(rec).astype(int):
                assert mask[py, px] or mask[max(py - 1, 0):py + 2, max(px - 1, 0):px + 2].any()
            assert ann['mask_method'] in ('grabcut', 'ellipse') and ann['iscrowd'] == 0
            assert bool(ann['noisy']) == truth[ann['csv_line']]['noisy']
    assert set(seen) == {r.line for r in records}  # every lesion present
    assert any(a['noisy'] for a in seen.values())
    # weak masks resemble the truth (noisy rows are deliberately displaced)
    dices = []
    for line, ann in seen.items():
        if truth[line]['noisy']:
            continue
        t = mask_utils.decode(truth[line]['mask']).astype(bool)
        m = mask_utils.decode(ann['segmentation']).astype(bool)
        dices.append(2 * (t & m).sum() / (t.sum() + m.sum()))
    assert np.mean(dices) > 0.75


def test_converter_skips_and_reports_bad_rows_and_pngs(synth, tmp_path):
    root, _ = synth
    import shutil
    data = tmp_path / 'data'
    shutil.copytree(root, data)
    records, _ = read_dl_info(str(data / 'DL_info.csv'))
    groups = list(group_by_key_slice(records).values())
    broken = groups[0][0]
    (data / 'Images_png' / broken.key_slice_relpath).write_bytes(b'not a png')
    missing = groups[1][0]
    os.remove(data / 'Images_png' / missing.key_slice_relpath)
    with open(data / 'DL_info.csv', newline='') as f:
        header, *rows = list(csv.reader(f))
    bad_line = len(rows) + 1  # the last data row
    rows[-1][header.index('Bounding_boxes')] = 'oops'
    with open(data / 'DL_info.csv', 'w', newline='') as f:
        csv.writer(f).writerows([header] + rows)
    out = tmp_path / 'coco'
    s = convert_deeplesion(str(data), str(out))
    reasons = dict(s.skipped)
    assert 'unreadable PNG' in reasons[broken.line] and 'missing PNG' in reasons[missing.line]
    assert reasons[bad_line].startswith('Bounding_boxes')
    n_bad = len(groups[0]) + len(groups[1]) + (
        bad_line not in {r.line
                         for g in groups[:2]
                         for r in g})
    assert s.total_lesions == len(records) - n_bad
    report = json.loads((out / 'deeplesion_conversion_report.json').read_text())
    assert {d['line'] for d in report['skipped']} == set(reasons)


def test_interrupted_conversion_keeps_earlier_output(synth, tmp_path, monkeypatch):
    root, _ = synth
    out = tmp_path / 'coco'
    convert_deeplesion(str(root), str(out), splits=['val'])
    before = (out / 'deeplesion_val.json').read_bytes()
    from acsdet.preparation import deeplesion_coco

    def crash(task):
        raise KeyboardInterrupt

    monkeypatch.setattr(deeplesion_coco, 'process_key_slice', crash)
    with pytest.raises(KeyboardInterrupt):
        convert_deeplesion(str(root), str(out), splits=['val'])
    assert (out / 'deeplesion_val.json').read_bytes() == before
    assert sorted(os.listdir(out)) == [
        '.acsdet-files.json', 'deeplesion_conversion_report.json', 'deeplesion_val.json'
    ]


def test_ellipse_fallback_covers_recist():
    rec = np.array([[20., 30.], [60., 30.], [40., 22.], [40., 38.]])
    m = ellipse_mask(rec, (64, 80))
    assert m[30, 21] and m[30, 59] and m[23, 40] and m[37, 40] and not m[10, 40]
    assert abs(m.sum() - np.pi * 20 * 8) / (np.pi * 20 * 8) < 0.1
