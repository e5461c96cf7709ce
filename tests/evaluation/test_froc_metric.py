"""FROCMetric (MMEngine) and the tools/froc_eval.py CLI."""
import json
import pickle

import numpy as np
import pytest
import torch

from acsdet.evaluation import FROCMetric
from mmdet.registry import METRICS

A, B = [10, 10, 29, 29], [100, 100, 139, 139]


def sample(img_id, dets, instances, interval=1.0):
    dets = np.asarray(dets, dtype=np.float32).reshape(-1, 5)
    return dict(
        img_id=img_id,
        pred_instances=dict(
            bboxes=torch.from_numpy(dets[:, :4]), scores=torch.from_numpy(dets[:, 4])),
        instances=instances,
        slice_interval=interval)


def two_images():
    return [
        sample(0, [A + [.9], [300, 300, 320, 320, .8]], [
            dict(bbox=A, lesion_type=4, long_diameter_mm=8.0),
            dict(bbox=[200, 200, 220, 220], lesion_type=5, long_diameter_mm=12., ignore_flag=1)
        ]),
        sample(
            1, [[50, 50, 60, 60, .7], B + [.6]],
            [dict(bbox=B, lesion_type=5, long_diameter_mm=35.0)],
            interval=5.0),
    ]


def test_metric_evaluates_with_prefix_subsets_and_files(tmp_path):
    metric = METRICS.build(dict(type='FROCMetric', output_dir=str(tmp_path)))
    assert isinstance(metric, FROCMetric)
    metric.process({}, two_images())
    res = metric.evaluate(size=2)
    # ranking: hit A (.9), FP (.8), FP (.7), hit B (.6): 2 images, 2 lesions (the ignored one
    # left out), curve fps [0, 0, .5, 1, 1] sens [0, .5, .5, .5, 1]
    assert res['froc/sens@0.5'] == pytest.approx(0.5)
    assert res['froc/sens@1'] == pytest.approx(1.0)
    assert res['froc/sens@16'] == pytest.approx(1.0)
    assert res['froc/avg'] == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    # per subset: liver has A (hit at rank 1); for lung, the liver hit is an FP too: B is hit
    # after 3 FPs (1.5 per image)
    assert res['froc/lesion_type[liver]/avg'] == pytest.approx(1.0)
    assert res['froc/lesion_type[lung]/avg'] == pytest.approx((0 + 0 + 1 + 1) / 4)
    assert res['froc/size[<10mm]/avg'] == pytest.approx(1.0)
    assert 'froc/thickness[>2.5mm]/avg' in res
    saved = json.loads((tmp_path / 'froc.json').read_text())
    assert saved['num_lesions'] == 2 and saved['average'] == pytest.approx(res['froc/avg'])
    assert len(saved['curve']['fps_per_image']) == 5
    png = (tmp_path / 'froc_curve.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 5000


def test_metric_falls_back_to_gt_instances():
    metric = FROCMetric(subsets=())
    s = sample(0, [A + [.9]], None)
    del s['instances']
    s['gt_instances'] = dict(bboxes=torch.tensor([A], dtype=torch.float32))
    metric.process({}, [s])
    assert metric.evaluate(size=1)['froc/avg'] == 1.0


def test_unknown_subset_rejected():
    with pytest.raises(ValueError, match='unknown FROC subsets'):
        FROCMetric(subsets=('organ', ))


def test_froc_eval_cli_on_pickle_and_json(tmp_path, capsys):
    from tools import froc_eval
    samples = two_images()
    for s in samples:  # what DumpDetResults writes: tensors moved to CPU, numpy is fine too
        s['img_path'] = f'/data/Images_png/000001_01_0{s["img_id"]}/010.png'
    pkl = tmp_path / 'results.pkl'
    pkl.write_bytes(pickle.dumps(samples))
    metrics = froc_eval.main([str(pkl), '--out-dir', str(tmp_path / 'out')])
    assert metrics['avg'] == pytest.approx(0.875)
    assert 'Avg(0.5-4)' in capsys.readouterr().out
    assert (tmp_path / 'out' / 'froc_curve.png').is_file()

    # plain JSON detections against a COCO GT file (noisy lesion left out)
    coco = dict(
        images=[
            dict(id=7, file_name='000001_01_00/010.png', slice_interval=1.0),
            dict(id=8, file_name='000001_01_01/010.png', slice_interval=5.0)
        ],
        annotations=[
            dict(id=1, image_id=7, bbox=[10, 10, 20, 20], lesion_type=4, noisy=0),
            dict(id=2, image_id=7, bbox=[200, 200, 20, 20], noisy=1),
            dict(id=3, image_id=8, bbox=[100, 100, 40, 40], noisy=0)
        ],
        categories=[dict(id=1, name='lesion')])
    (tmp_path / 'gt.json').write_text(json.dumps(coco))
    dets = {
        '000001_01_00/010.png': [A + [.9], [300, 300, 320, 320, .8]],
        'x/000001_01_01/010.png': [[50, 50, 60, 60, .7], B + [.6]],
        '000009_01_01/001.png': [[0, 0, 5, 5, .99]]
    }
    (tmp_path / 'dets.json').write_text(json.dumps(dets))
    metrics = froc_eval.main([str(tmp_path / 'dets.json'), str(tmp_path / 'gt.json')])
    assert metrics['avg'] == pytest.approx(0.875)
    assert 'ignored' in capsys.readouterr().out


def test_the_prediction_dump_never_replaces_an_input_or_a_users_file(tmp_path):
    """tools/test.py --out (issue 34 item 1): refused when the metric is built, before the model
    runs; else written atomically and readable as MMDetection's dump."""
    from acsdet.evaluation import AcsdetDumpDetResults
    from acsdet.utils.run_outputs import OutputRefused
    ckpt, user = tmp_path / 'model.pkl', tmp_path / 'mine.pkl'
    ckpt.write_bytes(b'weights')
    user.write_bytes(b'mine')
    for target in (ckpt, user):
        with pytest.raises(OutputRefused):
            AcsdetDumpDetResults(str(target), inputs=[str(ckpt)])
    assert ckpt.read_bytes() == b'weights' and user.read_bytes() == b'mine'
    dump = AcsdetDumpDetResults(str(tmp_path / 'results.pkl'), inputs=[str(ckpt)])
    dump.compute_metrics([dict(img_id=3)])
    with open(tmp_path / 'results.pkl', 'rb') as f:
        assert pickle.load(f) == [dict(img_id=3)]
