"""DeepLesion's boxes end to end: DL_info.csv -> converter -> dataset -> FROCMetric and
tools/froc_eval.py give exactly the official protocol's sensitivities on the CSV's own boxes."""
import csv
import json
import pickle
import shutil

import numpy as np
import pytest
import torch

from acsdet.datasets import DeepLesionDataset
from acsdet.deeplesion.boxes import (coco_to_continuous, continuous_to_inclusive, inclusive_to_coco,
                                     inclusive_to_continuous)
from acsdet.deeplesion.info import group_by_key_slice, read_dl_info
from acsdet.evaluation import FROCMetric, compute_froc
from acsdet.preparation.deeplesion_coco import convert_deeplesion
from acsdet.testing.synthetic import make_synthetic_deeplesion

from . import official_froc

FPS = (0.5, 1, 2, 4, 8, 16)


def test_box_forms_round_trip():
    inc = [10.5, 20, 11.5, 21]  # a 2 x 2 px box with fractional corners, as DL_info.csv has
    assert inclusive_to_coco(inc) == [10.5, 20, 2, 2]
    assert coco_to_continuous(inclusive_to_coco(inc)) == [10.5, 20, 12.5, 22]
    np.testing.assert_array_equal(continuous_to_inclusive(inclusive_to_continuous([inc])), [inc])
    # the +1 IoU of inclusive boxes is the plain IoU of continuous ones: a box on itself is 1
    res = compute_froc([np.array([inc + [0.9]])], [np.array([inc])])
    assert res.average == 1.0


def _csv_rows(path):
    with open(path, newline='') as f:
        header, *rows = list(csv.reader(f))
    return header, rows


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """Synthetic DeepLesion plus one 2 x 2 px lesion in the test split, converted."""
    root = tmp_path_factory.mktemp('boxes')
    make_synthetic_deeplesion(
        str(root), num_series=20, seed=8, image_size=128, context_mm=4, noisy_fraction=0.15)
    header, rows = _csv_rows(root / 'DL_info.csv')
    col = {c: i for i, c in enumerate(header)}
    base = next(r for r in rows if r[col['Train_Val_Test']] == '3')
    tiny = list(base)
    x, y = (float(v) for v in base[col['Measurement_coordinates']].split(',')[:2])
    tiny[col['Bounding_boxes']] = f'{x}, {y}, {x + 1}, {y + 1}'  # 1-based, inclusive: 2 x 2 px
    tiny[col['Measurement_coordinates']] = f'{x}, {y}, {x + 1}, {y + 1}, {x + 1}, {y}, {x}, {y + 1}'
    tiny[col['Lesion_diameters_Pixel_']] = '1.41421, 1.41421'
    tiny[col['Possibly_noisy']] = '0'
    rows.append(tiny)
    with open(root / 'DL_info.csv', 'w', newline='') as f:
        csv.writer(f).writerows([header] + rows)
    summary = convert_deeplesion(str(root), str(root / 'annotations'))
    assert not summary.skipped
    return root


def _detections(records, rng):
    """Per key slice (``<series>/<slice>.png``): inclusive ``[x1, y1, x2, y2, score]`` near
    each lesion (the exact box, boxes jittered around IoU 0.5) and false positives."""
    dets = {}
    for recs in group_by_key_slice(records).values():
        rows = []
        for r in recs:
            x1, y1, x2, y2 = r.bbox
            w, h = x2 - x1 + 1, y2 - y1 + 1
            if rng.random() < 0.4:
                rows.append([x1, y1, x2, y2])
            for _ in range(2):
                j = rng.uniform(-0.3, 0.3, 4) * [w, h, w, h]
                b = np.array([x1, y1, x2, y2]) + j
                if b[2] >= b[0] and b[3] >= b[1]:
                    rows.append(list(b))
            for _ in range(2):  # inside the lesion, IoU about 0.5: one pixel decides
                k = np.sqrt(rng.uniform(0.42, 0.58))
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                rows.append(
                    [cx - k * w / 2, cy - k * h / 2, cx + k * w / 2 - 1, cy + k * h / 2 - 1])
        for _ in range(int(rng.integers(0, 3))):
            cx, cy = rng.uniform(0, 127, 2)
            s = rng.uniform(4, 20)
            rows.append([cx, cy, cx + s, cy + s])
        dets[recs[0].key_slice_relpath] = np.array([b + [0.0] for b in rows]).reshape(-1, 5)
    n = sum(len(d) for d in dets.values())
    scores = rng.permutation(n) / n  # distinct: the reference's argsort has no tie rule
    k = 0
    for d in dets.values():
        d[:, 4] = scores[k:k + len(d)]
        k += len(d)
    return dets


def _official(records, split, dets, shrink=0.0):
    """The official protocol on DL_info.csv's boxes: evaluated images are the split's key slices
    with a non-noisy lesion, GT their non-noisy boxes (0-based inclusive)."""
    gts, boxes = [], []
    for recs in group_by_key_slice([r for r in records if r.split == split]).values():
        gt = [r.bbox - [0, 0, shrink, shrink] for r in recs if not r.noisy]
        if gt:
            gts.append(np.array(gt))
            boxes.append(dets[recs[0].key_slice_relpath])
    return official_froc.sens_at_fp(boxes, gts, FPS)


def _samples(ds, dets):
    """What the test loop hands the metric: predictions as a model outputs them (continuous)."""
    out = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        d = dets[info['img_path'].split('Images_png/')[-1]]
        boxes = d[:, :4].copy()
        boxes[:, 2:] += 1  # the inclusive box a model would draw, as MMDetection's box
        out.append(
            dict(
                img_id=info['img_id'],
                img_path=info['img_path'],
                pred_instances=dict(
                    bboxes=torch.from_numpy(boxes).float().double(),
                    scores=torch.from_numpy(d[:, 4])),
                instances=info['instances'],
                slice_interval=info['slice_interval']))
    return out


@pytest.mark.parametrize('split', ['train', 'test'])
def test_csv_converter_dataset_metric_equal_the_official_protocol(converted, split):
    records, errors = read_dl_info(str(converted / 'DL_info.csv'))
    assert not errors
    sid = {'train': 1, 'test': 3}[split]
    dets = _detections(records, np.random.default_rng(sid))
    official = _official(records, sid, dets)
    # the detections are sensitive to a 1-pixel error: the old, 1 px small GT scores otherwise
    assert not np.allclose(_official(records, sid, dets, shrink=1.0), official)

    ds = DeepLesionDataset(
        ann_file=f'annotations/deeplesion_{split}.json',
        data_root=str(converted) + '/',
        pipeline=[],
        test_mode=True)
    n_lesions = sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds)))
    assert n_lesions == sum(1 for r in records if r.split == sid and not r.noisy) > 5
    metric = FROCMetric(fps=FPS, subsets=())
    metric.process({}, _samples(ds, dets))
    res = metric.evaluate(size=len(ds))
    np.testing.assert_allclose([res[f'froc/sens@{f:g}'] for f in FPS], official, rtol=0, atol=1e-12)
    assert res['froc/avg'] == pytest.approx(np.mean(official[:4]), abs=1e-12)


def test_a_two_pixel_lesion_is_found_by_its_official_box(converted):
    records, _ = read_dl_info(str(converted / 'DL_info.csv'))
    tiny = records[-1]
    assert tiny.bbox[2] - tiny.bbox[0] == 1  # inclusive: 2 px wide
    ds = DeepLesionDataset(
        ann_file='annotations/deeplesion_test.json',
        data_root=str(converted) + '/',
        pipeline=[],
        test_mode=True)
    info = next(
        ds.get_data_info(i) for i in range(len(ds))
        if ds.get_data_info(i)['img_path'].endswith(tiny.key_slice_relpath))
    boxes = [a['bbox'] for a in info['instances']]
    np.testing.assert_allclose(boxes[-1], tiny.bbox + [0, 0, 1, 1])  # continuous: 2 x 2
    # a detection equal to the official box of that lesion alone: sensitivity 1 everywhere
    d = np.concatenate([tiny.bbox + [0, 0, 1, 1], [0.9]])[None]
    metric = FROCMetric(subsets=())
    metric.process({}, [
        dict(
            pred_instances=dict(bboxes=torch.tensor(d[:, :4]), scores=torch.tensor(d[:, 4])),
            instances=[info['instances'][-1]])
    ])
    assert metric.evaluate(size=1)['froc/avg'] == 1.0


def test_froc_eval_cli_equals_the_official_protocol(converted, tmp_path):
    from tools import froc_eval
    records, _ = read_dl_info(str(converted / 'DL_info.csv'))
    dets = _detections(records, np.random.default_rng(3))
    official = _official(records, 3, dets)
    gt = str(converted / 'annotations' / 'deeplesion_test.json')
    # plain JSON: inclusive boxes keyed by any path ending in <series>/<slice>.png
    plain = {f'/somewhere/Images_png/{k}': v.tolist() for k, v in dets.items()}
    (tmp_path / 'dets.json').write_text(json.dumps(plain))
    m = froc_eval.main([str(tmp_path / 'dets.json'), gt, '--fps'] + [str(f) for f in FPS])
    np.testing.assert_allclose([m[f'sens@{f:g}'] for f in FPS], official, rtol=0, atol=1e-12)
    # a tools/test.py pickle (continuous boxes, img_path and img_id), with and without GT
    ds = DeepLesionDataset(
        ann_file='annotations/deeplesion_test.json',
        data_root=str(converted) + '/',
        pipeline=[],
        test_mode=True)
    samples = _samples(ds, dets)
    (tmp_path / 'r.pkl').write_bytes(pickle.dumps(samples))
    for args in ([str(tmp_path / 'r.pkl'), gt], [str(tmp_path / 'r.pkl')]):
        m = froc_eval.main(args)
        np.testing.assert_allclose([m[f'sens@{f:g}'] for f in FPS], official, atol=1e-12)
    # detections without file names are matched by COCO id
    for s in samples:
        del s['img_path']
    (tmp_path / 'ids.pkl').write_bytes(pickle.dumps(samples))
    m = froc_eval.main([str(tmp_path / 'ids.pkl'), gt])
    np.testing.assert_allclose([m[f'sens@{f:g}'] for f in FPS], official, atol=1e-12)


def test_froc_eval_matches_by_name_after_a_reconversion_and_refuses_shifted_ids(
        converted, tmp_path, capsys):
    """A re-conversion that skips an earlier row shifts every later COCO id: file names still
    match; id-only detections are refused instead of being scored against other images."""
    from tools import froc_eval
    data = tmp_path / 'data'
    shutil.copytree(converted, data, ignore=shutil.ignore_patterns('annotations'))
    records, _ = read_dl_info(str(data / 'DL_info.csv'))
    groups = list(group_by_key_slice(records).values())
    first_test = min(r.line for r in records if r.split == 3)
    victim = next(g[0] for g in groups
                  if len(g) == 1 and g[0].split != 3 and g[0].line < first_test)
    header, rows = _csv_rows(data / 'DL_info.csv')
    rows[victim.line - 2][header.index('Bounding_boxes')] = 'oops'
    with open(data / 'DL_info.csv', 'w', newline='') as f:
        csv.writer(f).writerows([header] + rows)
    convert_deeplesion(str(data), str(data / 'annotations'))
    new_gt = str(data / 'annotations' / 'deeplesion_test.json')
    old_ids = {
        i['file_name']: i['id']
        for i in json.loads((converted / 'annotations' /
                             'deeplesion_test.json').read_text())['images']
    }
    new_ids = {i['file_name']: i['id'] for i in json.loads(open(new_gt).read())['images']}
    assert all(new_ids[k] == old_ids[k] - 1 for k in new_ids)  # every id moved by one

    dets = _detections(records, np.random.default_rng(3))
    official = _official(records, 3, dets)
    ds = DeepLesionDataset(
        ann_file='annotations/deeplesion_test.json',
        data_root=str(converted) + '/',
        pipeline=[],
        test_mode=True)
    samples = _samples(ds, dets)  # the predictions of the first conversion
    (tmp_path / 'r.pkl').write_bytes(pickle.dumps(samples))
    m = froc_eval.main([str(tmp_path / 'r.pkl'), new_gt])
    np.testing.assert_allclose([m[f'sens@{f:g}'] for f in FPS], official, atol=1e-12)
    for s in samples:
        del s['img_path']
    (tmp_path / 'ids.pkl').write_bytes(pickle.dumps(samples))
    with pytest.raises(SystemExit) as e:
        froc_eval.main([str(tmp_path / 'ids.pkl'), new_gt])
    assert e.value.code == 2
    assert 'do not line up' in capsys.readouterr().err
