"""inference/detector: the trained model finds a lesion at its physical place from every format
and the label map overlays the input; AlignShift models get the volume's spacing; volumetric
inference (one 3D pass over the CT: for '2.5d' the per-slice detections at every key slice on the
grid; every stored slice takes the detections of its key slice); provenance."""
import copy
import json
import os
import os.path as osp

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from mmengine.config import Config

from acsdet.apis import LesionDetector, write_case
from acsdet.inference import SliceDetection
from acsdet.inference.restore import box_window
from acsdet.io import CTVolume, StoredGeometry
from acsdet.testing.ct_files import head_to_feet_phantom
from acsdet.utils.errors import cli_message

from ..helpers import CONFIG_DEMO, EPOCHS, FORMATS
from ..helpers import read_phantom as _read
from ..helpers import seen_thickness


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
    from acsdet.inference import detector as lesion_detector
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
        shape = vol.hu.shape[1:]
        assert (_full(boxes_a, masks_a, shape) != _full(boxes_b, masks_b, shape)).mean() < 1e-3
    for k in range(1, 11, 2):  # the odd slices carry the next key slice's detections
        np.testing.assert_array_equal(b[k][1], b[k + 1][1])


def _full(boxes, crops, shape):
    """Full-image masks ``(n, H, W)`` of detections' masks inside their boxes."""
    return np.stack([
        SliceDetection(0, box, 0.0, crop,
                       box_window(box, shape)[:2]).full_mask(shape)
        for box, crop in zip(boxes, crops)
    ])


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

    def oom(*args, **kwargs):  # a generator, as forward_volume_steps: it fails in a step
        raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')
        yield

    monkeypatch.setattr(det.model.backbone, 'forward_volume_steps', oom)
    with pytest.raises(
            MemoryError,
            match=r'phantom: the 3D pass in steps of 16 key slices .* lower '
            r'depth_chunk \(now 16\)') as e:
        det(vol)
    assert 'lower --depth-chunk (now 16)' in cli_message(e.value)  # as the CLI says it
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
    from acsdet.inference import detector as lesion_detector
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
        assert len(masks_a) == len(masks_b)
        for mask_a, mask_b in zip(masks_a, masks_b):
            np.testing.assert_array_equal(mask_a, mask_b)


# ---- the trained model on one CT in every format ----------------------------------------------


@pytest.fixture(scope='session')
def detector(e2e_trained):
    from acsdet.apis import LesionDetector
    work = e2e_trained[0]
    return LesionDetector(
        CONFIG_DEMO, str(work / 'train' / f'epoch_{EPOCHS}.pth'), score_thr=0.3, batch_size=4)


@pytest.fixture(scope='session')
def detected(phantom, detector, tmp_path_factory):
    """Every format through the detector around the first lesion's key slice, written out."""
    out = tmp_path_factory.mktemp('infer')
    rec = phantom['records'][0]
    key = sorted(int(n[:-4]) for n in os.listdir(phantom['files']['png'])).index(rec.key_slice)
    results = {}
    from acsdet.apis import write_case
    for name in FORMATS:
        res = detector(_read(phantom, name), (key - 3, key + 4))
        folder = write_case(res, str(out), case=name, save_masks=True, save_overlays=True)
        results[name] = (res, folder)
    return dict(key=key, record=rec, results=results)


def test_the_lesion_is_found_at_its_physical_position_from_every_format(phantom, detected):
    rec, key = detected['record'], detected['key']
    vol = phantom['volume']
    x1, y1, x2, y2 = rec.bbox  # inclusive pixels of the key slice
    true_centre = vol.to_lps(np.array([(x1 + x2) / 2, (y1 + y2) / 2, key]))
    ref = detected['results']['png'][0].lesions
    assert ref, 'the trained model found nothing near a training lesion'
    for name, (res, folder) in detected['results'].items():
        les = res.lesions
        assert len(les) == len(ref), name
        for a, b in zip(les, ref):  # the same detections, the same physical places
            np.testing.assert_allclose(a.key_box_px, b.key_box_px, atol=1e-2)
            assert a.score == pytest.approx(b.score, abs=1e-3)
            np.testing.assert_allclose(a.center_lps_mm, b.center_lps_mm, atol=1e-2)
            np.testing.assert_allclose(a.box_lps_mm['min'], b.box_lps_mm['min'], atol=1e-2)
        # the known lesion: a lesion spans its key slice, its 3D box in LPS mm holds the true
        # centre (within half a voxel), and its detection on the key slice is centred in the
        # true box
        tol = 0.5 * np.array([vol.spacing[2], vol.spacing[1], vol.spacing[0]])
        hit = [
            le for le in les if le.slices[0] <= key <= le.slices[1] and np.all(
                np.array(le.box_lps_mm['min']) -
                tol <= true_centre) and np.all(true_centre <= np.array(le.box_lps_mm['max']) + tol)
        ]
        assert hit, (name, les[:3], true_centre)
        on_key = [
            d['box'] for d in res.detections if d['lesion'] == hit[0].id and d['slice'] == key
        ]
        bx = (on_key[0][0] + on_key[0][2]) / 2, (on_key[0][1] + on_key[0][3]) / 2
        assert x1 <= bx[0] <= x2 + 1 and y1 <= bx[1] <= y2 + 1
        if name not in ('png', 'dicom'):  # stored indices agree with the file's own geometry
            img = sitk.ReadImage(phantom['files'][name])
            p = img.TransformContinuousIndexToPhysicalPoint(hit[0].center_stored_index)
            np.testing.assert_allclose(p, hit[0].center_lps_mm, atol=0.02)
        saved = json.loads(open(osp.join(folder, 'lesions.json')).read())
        assert saved['version'] == '1.0' and saved['lesions'] == [le.to_json() for le in les]
        assert open(osp.join(folder, 'lesions.csv')).read().count('\n') == len(les) + 1
        assert 'lesion_001.png' in open(osp.join(folder, 'report.html')).read()


def test_bf16_finds_the_lesions_float32_finds_within_a_pixel(phantom, detected, e2e_trained):
    """Issue 36: the trained model in bfloat16 (its layers; inference/precision.py) against
    float32 on the phantom: the same lesions, each key-slice box within 1 px, scores within
    0.05."""
    from acsdet.apis import LesionDetector
    from acsdet.inference.precision import bf16_supported
    assert bf16_supported('cpu')[0]  # this project's machine has AVX512-BF16
    det = LesionDetector(
        CONFIG_DEMO,
        str(e2e_trained[0] / 'train' / f'epoch_{EPOCHS}.pth'),
        score_thr=0.3,
        precision='bf16')
    assert det.precision == 'bf16' and det.volumetric is False  # no train_context_slices
    key = detected['key']
    ref = detected['results']['png'][0].lesions
    got = det(_read(phantom, 'png'), (key - 3, key + 4)).lesions
    assert ref and len(got) == len(ref)

    def off(a, b):  # the largest key-box edge difference, px
        return np.abs(np.array(a.key_box_px) - np.array(b.key_box_px)).max()

    # lesions of near-equal scores may swap places in the order, and a lesion's key slice (its
    # best-scoring member) may move to a member of near-equal score: match by box, then the
    # key slice of each within the other's slices
    for b in ref:
        a = min(got, key=lambda g: off(g, b))
        assert off(a, b) <= 1.0, (b, a)
        assert a.score == pytest.approx(b.score, abs=0.05)
        assert a.slices[0] <= b.key_slice <= a.slices[1], (b, a)
        assert b.slices[0] <= a.key_slice <= b.slices[1], (b, a)


@pytest.mark.parametrize('name', ['LPS', 'RAS', 'LPI', 'coronal', 'dicom'])
def test_label_map_overlays_the_input_exactly(phantom, detected, name):
    res, folder = detected['results'][name]
    lab = sitk.ReadImage(osp.join(folder, 'lesions.nii.gz'))
    if name == 'dicom':  # the geometry of the series as read
        src = _read(phantom, name).reference
    else:
        src = StoredGeometry.of(sitk.ReadImage(phantom['files'][name]))
    assert lab.GetSize() == src.size
    np.testing.assert_allclose(lab.GetSpacing(), src.spacing, rtol=1e-6)
    np.testing.assert_allclose(lab.GetOrigin(), src.origin, atol=1e-4)
    np.testing.assert_allclose(lab.GetDirection(), src.direction, atol=1e-6)
    # the labelled voxels are the same places in space as in the LPS-ordered result
    arr = sitk.GetArrayFromImage(lab)  # (z, y, x) as stored
    zyx = np.argwhere(arr > 0)
    assert len(zyx) == int((res.label_map > 0).sum()) > 0
    pts = np.array([lab.TransformIndexToPhysicalPoint([int(i) for i in p[::-1]]) for p in zyx])
    ref = np.argwhere(res.label_map > 0)[:, ::-1]  # (x, y, z)
    ref_pts = phantom['volume'].to_lps(ref)
    np.testing.assert_allclose(
        np.array(sorted(map(tuple, np.round(pts, 2)))),
        np.array(sorted(map(tuple, np.round(ref_pts, 2)))),
        atol=0.02)


def test_alignshift_model_receives_the_volume_slice_spacing(phantom, tmp_path):
    """Patient-CT inference with an AlignShift model: the volume's slice spacing is the
    thickness every AlignShift layer sees."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from acsdet.apis import LesionDetector
    from acsdet.ops.shift import AlignShiftConv
    from mmdet.registry import MODELS
    config = tmp_path / 'alignshift_demo.py'
    config.write_text(f'_base_ = {CONFIG_DEMO!r}\n'
                      "model = dict(type='ThicknessAwareMaskRCNN', "
                      "backbone=dict(conv_mode='alignshift'))\n")
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'random.pth')
    det = LesionDetector(str(config), str(tmp_path / 'random.pth'), score_thr=0.0, batch_size=2)
    vol = _read(phantom, 'LPS')
    with seen_thickness(det.model) as seen:
        res = det(vol, (3, 5))
    layers = [n for n, m in det.model.named_modules() if isinstance(m, AlignShiftConv) and m.shift]
    assert layers and res.slices == (3, 5) and set(layers) <= set(seen)
    for calls in (seen[n] for n in layers):
        assert len(calls) == 1  # one batch of 2 key slices
        torch.testing.assert_close(calls[0], torch.full((2, ), float(vol.spacing[0])))
