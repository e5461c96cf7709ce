"""End to end on synthetic DeepLesion: convert, train (CPU, minutes), test, score.

The CPU-sized demo model is trained briefly on a small synthetic set and must then find the
lesions it was trained on far better than the same model untrained; tools/test.py writes the
FROC files, the dumped predictions re-score identically with tools/froc_eval.py, and --show-dir
draws the key slices.
"""
import json
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config

from acsdet.engine.cli import enable_amp

from .helpers import CONFIG_DEMO as CONFIG
from .helpers import EPOCHS


@pytest.fixture
def data(e2e_data):
    return e2e_data


@pytest.fixture
def trained(e2e_trained):
    return e2e_trained


def test_short_training_clearly_beats_untrained(trained):
    _, untrained, metrics = trained
    # measured on this 2-core CPU with 10 epochs: untrained 0.00, trained 0.28 (sens@4: 0.38)
    assert untrained['froc/avg'] < 0.05
    assert metrics['froc/avg'] >= untrained['froc/avg'] + 0.15, (untrained, metrics)
    assert metrics['froc/sens@4'] >= untrained['froc/sens@4'] + 0.2, (untrained, metrics)


def test_training_checkpoints_record_their_architecture(trained):
    from acsdet.engine.architecture import ARCH_KEY, model_architecture
    ckpt = torch.load(trained[0] / 'train' / f'epoch_{EPOCHS}.pth', weights_only=False)
    assert ckpt['meta'][ARCH_KEY] == model_architecture(Config.fromfile(CONFIG).model)


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
    from acsdet.deeplesion.png import decode_slice
    work = trained[0]
    entries = sorted((work / 'slices').rglob('*.npy'))
    assert entries and not list((work / 'slices').rglob('*.tmp'))
    for entry in entries[::max(1, len(entries) // 5)]:
        series, stem = entry.parent.name.rsplit('-', 1)[0], entry.name.split('-')[0]
        png = data / 'Images_png' / series / f'{stem}.png'
        np.testing.assert_array_equal(np.load(entry), decode_slice(str(png)))


def test_amp_on_cpu_warns_and_keeps_fp32(monkeypatch):
    cfg = Config.fromfile(CONFIG)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.warns(UserWarning, match='fp32'):
        assert enable_amp(cfg) is False
    assert cfg.optim_wrapper.type == 'OptimWrapper'


def test_end_to_end_tests_share_one_xdist_worker(data, request):
    """``make test`` trains the end-to-end model once: every test on it is in the xdist group
    ``e2e`` (tests/conftest.py), which pytest-xdist's loadgroup marks in the node id (a pytest
    that ignores the mark would train it once per worker)."""
    if getattr(request.config.option, 'loadgroup', False):  # an xdist worker of make test
        assert request.node.nodeid.endswith('@e2e'), request.node.nodeid
    assert request.node.get_closest_marker('xdist_group').args == ('e2e', )
