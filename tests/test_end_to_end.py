"""End to end on synthetic DeepLesion: convert, train (CPU, minutes), test, score.

The CPU-sized demo model is trained briefly on a small synthetic set and must then find the
lesions it was trained on far better than the same model untrained; tools/test.py writes the
FROC files, the dumped predictions re-score identically with tools/froc_eval.py, and --show-dir
draws the key slices.
"""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from acsdet.datasets.deeplesion_coco import convert_deeplesion
from acsdet.datasets.synthetic import make_synthetic_deeplesion
from acsdet.engine.cli import enable_amp

from .conftest import ROOT

CONFIG = osp.join(ROOT, 'configs', 'demo', 'deeplesion_acs_7slice_demo.py')
EPOCHS = 14


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('e2e')
    make_synthetic_deeplesion(
        str(root), num_series=48, seed=7, image_size=192, context_mm=6, lesion_mm=(12, 50))
    convert_deeplesion(str(root), str(root / 'annotations'))
    return root


def _options(work):
    # score on the training key slices: the test is whether the whole stack learns
    return [
        '--cfg-options', f'train_cfg.max_epochs={EPOCHS}', 'train_cfg.val_interval=1000',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        'test_dataloader.dataset.ann_file=annotations/deeplesion_train.json',
        'param_scheduler.1.milestones=[12,13]', 'default_hooks.logger.interval=50',
        'randomness.seed=0'
    ]


@pytest.fixture(scope='module')
def trained(data, tmp_path_factory):
    from tools import test as test_tool
    from tools import train as train_tool
    init_default_scope('mmdet')
    work = tmp_path_factory.mktemp('work')
    # the untrained model, saved as a checkpoint and tested through tools/test.py
    runner = Runner.from_cfg(
        train_tool.build_cfg(
            train_tool.parse_args(
                [CONFIG, '--work-dir',
                 str(work / 'init'), '--data-root',
                 str(data)] + _options(work))))
    runner.model.init_weights()
    torch.save({'state_dict': runner.model.state_dict()}, work / 'untrained.pth')
    untrained = test_tool.main([
        CONFIG,
        str(work / 'untrained.pth'), '--work-dir',
        str(work / 'test0'), '--data-root',
        str(data)
    ] + _options(work))
    train_tool.main([
        CONFIG, '--work-dir',
        str(work / 'train'), '--data-root',
        str(data), '--slice-cache',
        str(work / 'slices')
    ] + _options(work))
    ckpt = work / 'train' / f'epoch_{EPOCHS}.pth'
    trained = test_tool.main([
        CONFIG,
        str(ckpt), '--work-dir',
        str(work / 'test'), '--data-root',
        str(data), '--out',
        str(work / 'results.pkl'), '--show-dir',
        str(work / 'show')
    ] + _options(work))
    return work, untrained, trained


def test_short_training_clearly_beats_untrained(trained):
    _, untrained, metrics = trained
    # measured on this 2-core CPU: untrained 0.00, trained 0.27 (sens@4: 0.34)
    assert untrained['froc/avg'] < 0.05
    assert metrics['froc/avg'] >= untrained['froc/avg'] + 0.15, (untrained, metrics)
    assert metrics['froc/sens@4'] >= untrained['froc/sens@4'] + 0.2, (untrained, metrics)


def test_test_tool_outputs(trained):
    work, _, metrics = trained
    saved = json.loads((work / 'test' / 'froc.json').read_text())
    assert saved['average'] == pytest.approx(metrics['froc/avg'])
    assert 'Avg(0.5-4)' in (work / 'test' / 'froc_table.txt').read_text()
    assert (work / 'test' / 'froc_curve.png').read_bytes()[:4] == b'\x89PNG'
    shown = list((work / 'show').glob('*.png'))
    assert len(shown) == saved['num_images'] and shown[0].stat().st_size > 1000
    with open(work / 'results.pkl', 'rb') as f:
        dumped = pickle.load(f)
    assert len(dumped) == saved['num_images']
    from tools import froc_eval
    assert froc_eval.main([str(work / 'results.pkl')])['avg'] == pytest.approx(metrics['froc/avg'])


def test_training_filled_the_slice_cache(trained, data):
    from acsdet.datasets.slices import decode_slice
    work = trained[0]
    entries = sorted((work / 'slices').rglob('*.npy'))
    assert entries and not list((work / 'slices').rglob('*.tmp'))
    for entry in entries[::max(1, len(entries) // 5)]:
        series, stem = entry.parent.name, entry.name.split('-')[0]
        png = data / 'Images_png' / series / f'{stem}.png'
        np.testing.assert_array_equal(np.load(entry), decode_slice(str(png)))


def test_amp_on_cpu_warns_and_keeps_fp32(monkeypatch):
    cfg = Config.fromfile(CONFIG)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.warns(UserWarning, match='fp32'):
        assert enable_amp(cfg) is False
    assert cfg.optim_wrapper.type == 'OptimWrapper'
