"""Volumetric inference: one 3D pass over the CT. For '2.5d' it gives the per-slice detections
at every key slice on the grid; every stored slice takes the detections of its key slice."""
import copy

import numpy as np
import pytest
import torch
from mmengine.config import Config

from acsdet.apis import LesionDetector, write_case
from acsdet.io import CTVolume
from acsdet.testing.ct_files import head_to_feet_phantom

from ..helpers import CONFIG_DEMO


@pytest.fixture(scope='module')
def random_2_5d(tmp_path_factory):
    """The demo model in '2.5d', randomly initialised, and a 1 mm phantom CT."""
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = Config.fromfile(CONFIG_DEMO)
    cfg.model.backbone.conv_mode = '2.5d'
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = tmp_path_factory.mktemp('vol') / 'random_2.5d.pth'
    torch.save({'state_dict': model.state_dict()}, path)
    hu, _ = head_to_feet_phantom(num_slices=12, size=64)
    vol = CTVolume(
        hu=hu.astype(np.float32),
        spacing=(1.0, 0.8, 0.8),
        z_positions=np.arange(12) * 1.0,
        origin=np.zeros(3),
        direction=np.diag([1.0, 1.0, -1.0]),
        to_stored=((0, 1, 2), (False, ) * 3, (64, 64, 12)),
        reference=None,
        source='phantom',
        name='phantom')
    return cfg, str(path), vol


def test_2_5d_volumetric_equals_per_slice_on_the_grid(random_2_5d, monkeypatch):
    from acsdet.apis import lesion_detector
    monkeypatch.setattr(lesion_detector, '_CHANNELS_PER_PASS', 4)  # OpenCV's 128: in groups
    cfg, ckpt, vol = random_2_5d
    per_slice = LesionDetector(cfg, ckpt, score_thr=0.0)
    volumetric = LesionDetector(cfg, ckpt, score_thr=0.0, volumetric=True, depth_chunk=2)
    a, _ = per_slice.predict_slices(vol, list(range(12)))
    b, seconds, info = volumetric.predict_volume(vol, list(range(12)))
    assert [s for s, *_ in b] == list(range(12)) and set(seconds) == {'prepare', 'model'}
    assert info['mode'] == 'volumetric' and info['grid_step_mm'] == 2.0
    assert info['key_slices'] == 6 and info['key_position_mm'][3] == 4.0
    for k in range(0, 12, 2):  # 1 mm slices on a 2 mm grid: the even slices are key slices
        (_, boxes_a, scores_a, masks_a), (_, boxes_b, scores_b, masks_b) = a[k], b[k]
        assert len(scores_a) == len(scores_b) > 0
        np.testing.assert_allclose(boxes_a, boxes_b, atol=1e-3)
        np.testing.assert_allclose(scores_a, scores_b, atol=1e-5)
        assert (masks_a != masks_b).mean() < 1e-3
    for k in range(1, 11, 2):  # the odd slices carry the next key slice's detections
        np.testing.assert_array_equal(b[k][1], b[k + 1][1])


def test_volumetric_results_say_how_they_were_made(random_2_5d, tmp_path):
    import json
    cfg, ckpt, vol = random_2_5d
    res = LesionDetector(cfg, ckpt, score_thr=0.3, volumetric=True)(vol)
    assert res.inference['mode'] == 'volumetric' and res.slices == (0, 12)
    saved = json.load(open(write_case(res, str(tmp_path), 'case') + '/lesions.json'))
    assert saved['inference']['grid_step_mm'] == 2.0
    assert saved['inference']['key_position_mm']['11'] == 10.0  # the last grid slice
    assert LesionDetector(cfg, ckpt, score_thr=0.3)(vol).inference == {'mode': 'per-slice'}


def test_configs_without_a_volumetric_pass_are_refused(random_2_5d, tmp_path):
    cfg, ckpt, _ = random_2_5d
    a3d = copy.deepcopy(cfg)  # the fixture's config stays as it is
    a3d.model.backbone.conv_mode = 'a3d'
    with pytest.raises(ValueError, match="'a3d' fuses a fixed D x D"):
        LesionDetector(a3d, ckpt, volumetric=True)
    with pytest.raises(ValueError, match='depth_chunk must be >= 1'):
        LesionDetector(cfg, ckpt, volumetric=True, depth_chunk=0)


def test_a_chunk_that_does_not_fit_names_the_setting(random_2_5d, monkeypatch, capsys):
    cfg, ckpt, vol = random_2_5d
    det = LesionDetector(cfg, ckpt, volumetric=True, depth_chunk=16)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')

    monkeypatch.setattr(det.model.backbone, 'forward_volume', oom)
    with pytest.raises(
            MemoryError,
            match=r'phantom: the 3D pass in steps of 16 key slices .* lower '
            r'--depth-chunk \(depth_chunk, now 16\)'):
        det(vol)
    from tools import infer
    with pytest.raises(SystemExit) as e:
        infer.parse_args([CONFIG_DEMO, ckpt, 'x.nii.gz', '--out-dir', 'o', '--depth-chunk', '0'])
    assert e.value.code == 2 and '--depth-chunk must be >= 1, got 0' in capsys.readouterr().err


def test_a_ct_thinner_than_d_slices_repeats_its_end_slices_in_both_modes(random_2_5d):
    """3 slices of 2 mm for D = 7: every stack repeats the nearest existing slice past the CT's
    ends (the per-slice loader's rule), so for '2.5d' both modes give the same detections."""
    import dataclasses
    cfg, ckpt, vol = random_2_5d
    thin = dataclasses.replace(
        vol,
        hu=vol.hu[4:7].copy(),
        spacing=(2.0, ) + tuple(vol.spacing[1:]),
        z_positions=np.arange(3) * 2.0,
        to_stored=(vol.to_stored[0], vol.to_stored[1], (64, 64, 3)),
        warnings=[])
    a, _ = LesionDetector(cfg, ckpt, score_thr=0.0).predict_slices(thin, [0, 1, 2])
    b, _, info = LesionDetector(
        cfg, ckpt, score_thr=0.0, volumetric=True).predict_volume(thin, [0, 1, 2])
    assert info['key_slices'] == 3 and len(a) == len(b) == 3
    for (_, boxes_a, scores_a, _), (_, boxes_b, scores_b, _) in zip(a, b):
        assert len(boxes_a) > 0
        np.testing.assert_allclose(boxes_a, boxes_b, atol=1e-3)
        np.testing.assert_allclose(scores_a, scores_b, atol=1e-5)


def test_no_mask_is_made_below_the_score_threshold_and_nothing_kept_changes(
        random_2_5d, monkeypatch):
    from acsdet.apis import lesion_detector
    cfg, ckpt, vol = random_2_5d
    fast = LesionDetector(cfg, ckpt, score_thr=0.3)
    assert fast.model.roi_head.test_cfg.score_thr == pytest.approx(0.3 - 1e-6)
    assert cfg.model.test_cfg.rcnn.score_thr == 0.005  # the caller's config stays as it is
    monkeypatch.setattr(lesion_detector, '_skip_masks_below', lambda cfg, thr: None)
    full = LesionDetector(cfg, ckpt, score_thr=0.3)
    assert full.model.roi_head.test_cfg.score_thr == 0.005
    a, _ = fast.predict_slices(vol, list(range(12)))
    b, _ = full.predict_slices(vol, list(range(12)))
    assert sum(len(boxes) for _, boxes, _, _ in a) > 10
    for (_, boxes_a, scores_a, masks_a), (_, boxes_b, scores_b, masks_b) in zip(a, b):
        np.testing.assert_array_equal(boxes_a, boxes_b)
        np.testing.assert_array_equal(scores_a, scores_b)
        np.testing.assert_array_equal(masks_a, masks_b)
