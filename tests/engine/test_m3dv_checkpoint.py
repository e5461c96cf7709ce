"""The released M3DV/AlignShift models in acsdet: their checkpoints converted, and the converted
models computing what the authors' code computes (tests/m3dv_reference.py, float64)."""
import os.path as osp
import subprocess
import sys
from collections import OrderedDict

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope

import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
from acsdet.engine.architecture import ARCH_KEY, CheckpointMismatch, model_architecture
from acsdet.engine.m3dv_checkpoint import (M3DVCheckpointError, convert_m3dv_checkpoint,
                                           detect_arch, m3dv_config_path)
from acsdet.utils.errors import cli_message
from mmdet.registry import MODELS, TRANSFORMS
from tests import m3dv_reference as ref

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# one slice count each, both seen: (arch, D, the config text in meta names the backbone)
RELEASED = [('2d', 3, True), ('tsm', 7, False), ('alignshift', 3, True), ('a3d', 7, True)]
SIZE = 64  # the test images (stride-4 features 16 x 16)


def _randomise_norms(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=g)
            m.bias.data = 0.1 * torch.randn(n, generator=g)
            m.running_mean = 0.1 * torch.randn(n, generator=g)
            m.running_var = 0.5 + 1.5 * torch.rand(n, generator=g)


def save_m3dv_checkpoint(model: nn.Module, path, config_text=None, module_prefix=False) -> None:
    """As mmcv 0.x's ``save_checkpoint`` (torch 1.3's non-zip format), with an optimizer."""
    state = OrderedDict(((f'module.{k}' if module_prefix else k), v.detach().cpu())
                        for k, v in model.state_dict().items())
    meta = dict(
        mmcv_version='0.2.16',
        time='Sat Jun 13 10:00:00 2020',
        epoch=20,
        iter=200000,
        mmdet_version='1.0rc0+d35e79f',
        CLASSES='lesion')
    if config_text is not None:
        meta['config'] = config_text
    optimizer = dict(state={}, param_groups=[dict(lr=0.0002, momentum=0.9, params=[0, 1])])
    torch.save(
        dict(meta=meta, state_dict=state, optimizer=optimizer),
        str(path),
        _use_new_zipfile_serialization=False)


def _authors_config(arch: str, d: int) -> str:
    return (f"model = dict(type='MaskRCNN', backbone=dict(type='{ref.BACKBONE_NAMES[arch]}', "
            f'n_cts={d}, out_dim=512, fpn_finest_layer=2))\n')


@pytest.fixture(scope='module')
def released(tmp_path_factory):
    """Per architecture: the authors' detector modules (random weights, eval), and the acsdet
    model built from its config with the converted checkpoint loaded (both float64)."""
    out = {}
    tmp = tmp_path_factory.mktemp('m3dv')
    init_default_scope('mmdet')
    for arch, d, with_config in RELEASED:
        torch.manual_seed(len(out))
        theirs = ref.MaskRCNN(arch, d)
        _randomise_norms(theirs)
        src, dst = tmp / f'{arch}_{d}slice.pth', tmp / f'{arch}_{d}slice_acsdet.pth'
        save_m3dv_checkpoint(
            theirs,
            src,
            _authors_config(arch, d) if with_config else None,
            module_prefix=arch == '2d')
        report = convert_m3dv_checkpoint(str(src), str(dst), arch=None if with_config else arch)
        src.unlink()
        cfg = Config.fromfile(report['config'])
        ours = MODELS.build(cfg.model)
        ckpt = torch.load(str(dst), map_location='cpu', weights_only=True)
        ours.load_state_dict(ckpt['state_dict'], strict=True)
        out[arch] = dict(
            theirs=theirs.double().eval(),
            ours=ours.double().eval(),
            d=d,
            ckpt=str(dst),
            cfg=cfg,
            meta=ckpt['meta'],
            report=report)
    return out


def _inputs(arch, d):
    torch.manual_seed(3)
    x = torch.randn(2, d, SIZE, SIZE, dtype=torch.float64) * 50
    thickness = torch.tensor([1.0, 5.0], dtype=torch.float64)  # a full shift, a 60 % blend
    return x, thickness


def _features(r, arch):
    x, t = _inputs(arch, r['d'])
    with torch.no_grad():
        theirs = r['theirs'].backbone(x if arch == '2d' else x.unsqueeze(1),
                                      *([t] if arch == 'alignshift' else []))[0]
        ours = r['ours'].neck(r['ours'].backbone(x, thickness=t))[0]
    return theirs, ours


@pytest.mark.parametrize('arch', [a for a, *_ in RELEASED])
def test_conversion_recognises_the_model_and_records_it(released, arch):
    r = released[arch]
    assert r['report']['arch'] == arch and r['report']['num_slices'] == r['d']
    assert r['report']['config'] == m3dv_config_path(arch, r['d'])
    assert r['meta'][ARCH_KEY] == model_architecture(r['cfg'].model)
    assert r['meta']['converted_from']['backbone'] == ref.BACKBONE_NAMES[arch]
    dropped = r['report']['dropped']
    if arch == 'a3d':  # conv0 and the two transitions: A3DConv(enable_shift=False)
        assert dropped == [
            'backbone.conv0.adaptive_align_weights',
            'backbone.transition1.conv.adaptive_align_weights',
            'backbone.transition2.conv.adaptive_align_weights'
        ]
        n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        unused = sum(r['theirs'].state_dict()[k].numel() for k in dropped)
        ours = n(r['ours'].backbone) + n(r['ours'].neck)
        assert ours == n(r['theirs'].backbone) - unused  # the authors' network, no more
    else:
        assert dropped == []


@pytest.mark.parametrize('arch', [a for a, *_ in RELEASED])
def test_backbone_features_equal_the_authors(released, arch):
    theirs, ours = _features(released[arch], arch)
    assert ours.shape == theirs.shape == (2, 512, SIZE // 4, SIZE // 4)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9 * theirs.abs().max().item())


def test_a3d_fusion_placement_matters(released):
    """Fusing also conv0 (acsdet's former 'a3d') is another network: the authors' weights
    would not give their features."""
    r = released['a3d']
    ours = r['ours']
    theirs, before = _features(r, 'a3d')
    conv0 = ours.backbone.features.conv0
    conv0.fusion = acsdet.ops.SliceFusion(1, r['d']).double()
    try:
        _, after = _features(r, 'a3d')
    finally:
        conv0.fusion = None
    assert not torch.allclose(after, theirs, atol=1e-3)
    torch.testing.assert_close(before, theirs, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize('arch', ['2d', 'alignshift'])
def test_rpn_outputs_anchors_and_decoded_boxes(released, arch):
    r = released[arch]
    feat = _features(r, arch)[1][:1]
    head = r['ours'].rpn_head
    with torch.no_grad():
        (cls, ), (reg, ) = head((feat, ))
        t_cls, t_reg = r['theirs'].rpn_head.forward_single(feat)
    torch.testing.assert_close(cls, t_cls, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(reg, t_reg, rtol=1e-9, atol=1e-12)
    hw = feat.shape[-2:]
    anchors = head.prior_generator.grid_priors([hw], dtype=torch.float64, device='cpu')[0]
    t_anchors = ref.rpn_anchor_generator().grid_anchors(hw, 4).double()
    assert torch.equal(anchors, t_anchors)
    assert t_anchors[:18].tolist()[6] == [-8.0, -8.0, 8.0, 8.0]  # ratio 1, 16 px, centred at 0
    deltas = reg[0].permute(1, 2, 0).reshape(-1, 4) * 20  # large deltas: the clip and clamps
    img = (SIZE, SIZE - 8)
    torch.testing.assert_close(
        head.bbox_coder.decode(anchors, deltas, max_shape=img),
        ref.delta2bbox(anchors, deltas, max_shape=img),
        rtol=0,
        atol=1e-12)
    # mmdet 3's LegacyDeltaXYWHBBoxCoder is not it: 0.5 px off on every unclamped corner
    from mmdet.models.task_modules.coders import LegacyDeltaXYWHBBoxCoder
    legacy = LegacyDeltaXYWHBBoxCoder().decode(anchors, deltas * 0.01)
    assert (legacy - ref.delta2bbox(anchors, deltas * 0.01)).abs().max() == pytest.approx(0.5)


def _rois(n=6, seed=5):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * (SIZE - 24)
    wh = 6 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 30  # >= 1 feature pixel
    boxes = torch.cat([xy, (xy + wh).clamp(max=SIZE - 1)], 1)
    batch = torch.tensor([[0.0], [1.0]] * (n // 2), dtype=torch.float64)
    return torch.cat([batch, boxes], 1)


@pytest.mark.parametrize('arch', ['tsm', 'a3d'])
def test_roi_features_box_and_mask_heads(released, arch):
    r = released[arch]
    feat = _features(r, arch)[1]
    rois = _rois()
    roi_head = r['ours'].roi_head
    with torch.no_grad():
        box_feats = roi_head.bbox_roi_extractor((feat, ), rois)
        mask_feats = roi_head.mask_roi_extractor((feat, ), rois)
        torch.testing.assert_close(
            box_feats, ref.roi_align(feat, rois, 7, 0.25, 2), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(
            mask_feats, ref.roi_align(feat, rois, 14, 0.25, 2), rtol=1e-9, atol=1e-9)
        cls, reg = roi_head.bbox_head(box_feats)
        t_cls, t_reg = r['theirs'].bbox_head(box_feats)
        masks = roi_head.mask_head(mask_feats)
        t_masks = r['theirs'].mask_head(mask_feats)
    torch.testing.assert_close(cls, t_cls[:, [1, 0]], rtol=1e-9, atol=1e-9)  # background last
    torch.testing.assert_close(cls.softmax(1)[:, 0], t_cls.softmax(1)[:, 1], rtol=1e-9, atol=0)
    torch.testing.assert_close(reg, t_reg[:, 4:8], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(masks, t_masks[:, 1:2], rtol=1e-9, atol=1e-9)
    boxes = roi_head.bbox_head.bbox_coder.decode(rois[:, 1:], reg, max_shape=(SIZE, SIZE))
    t_boxes = ref.delta2bbox(rois[:, 1:], t_reg, [0.] * 4, [0.1, 0.1, 0.2, 0.2], (SIZE, SIZE))
    torch.testing.assert_close(boxes, t_boxes[:, 4:8], rtol=0, atol=1e-12)


def test_roi_align_differs_only_under_one_feature_pixel(released):
    """mmcv widens a RoI narrower than one feature pixel to one; mmdet 1.x did not."""
    feat = torch.randn(1, 8, 16, 16, dtype=torch.float64)
    extractor = released['tsm']['ours'].roi_head.bbox_roi_extractor
    wide = torch.tensor([[0, 10.0, 12.0, 13.0, 20.0]], dtype=torch.float64)  # 4 x 9 px
    tiny = torch.tensor([[0, 10.0, 12.0, 11.0, 20.0]], dtype=torch.float64)  # 2 px: 0.5 feature px
    with torch.no_grad():
        torch.testing.assert_close(extractor((feat, ), wide), ref.roi_align(feat, wide, 7, .25, 2))
        assert not torch.allclose(extractor((feat, ), tiny), ref.roi_align(feat, tiny, 7, .25, 2))


def _write_series(folder, n=15, size=512, start=1):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(start, start + n):
        img = rng.integers(32768 - 1100, 32768 + 2200, (size, size)).astype(np.uint16)
        assert cv2.imwrite(str(folder / f'{i:03d}.png'), img)


@pytest.mark.parametrize('config', ['tsm_7slice', 'alignshift_7slice', 'a3d_3slice', '2d_7slice'])
def test_pipeline_input_is_the_authors(tmp_path, config):
    """The test pipeline's array for a DeepLesion PNG key slice (512 x 512) equals the authors'
    ``load_prep_img`` + ``Normalize`` for every slice-interval case: direct neighbours,
    integral steps, interpolation with their first-neighbour weights, thick slices, and a key
    slice near the series' end (missing neighbours)."""
    _write_series(tmp_path / '000001_01_01')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'm3dv', f'{config}.py'))
    steps = [
        s for s in cfg.test_dataloader.dataset.pipeline
        if s.type in ('LoadDeepLesionSlices', 'HUWindowNormalize', 'Resize')
    ]
    d = steps[0].num_slices
    align = config.startswith('alignshift')
    for interval, key in [(0.625, 8), (1.0, 8), (1.25, 8), (2.0, 8), (2.5, 8), (5.0, 8), (1.25, 14),
                          (0.8, 2)]:
        results = dict(
            img_path=str(tmp_path / '000001_01_01' / f'{key:03d}.png'),
            key_slice=key,
            slice_interval=interval)
        for s in steps:
            results = TRANSFORMS.build(s)(results)
        theirs = ref.model_input(str(tmp_path), f'000001_01_01/{key:03d}.png', interval, d, align)
        assert results['img'].shape == theirs.shape == (512, 512, d)
        # float32 HU (ours) vs float64 PNG values minus 32768 in float32 (theirs): 1e-3 HU
        np.testing.assert_allclose(results['img'], theirs, rtol=0, atol=2e-4, err_msg=interval)
    # acsdet's own weights differ from theirs where 7 slices are interpolated
    own = dict(steps[0], fraction_rule='own')
    if d == 7 and not align:
        results = dict(
            img_path=str(tmp_path / '000001_01_01/008.png'), key_slice=8, slice_interval=1.25)
        hu = TRANSFORMS.build(own)(results)['img']
        first = TRANSFORMS.build(steps[0])(dict(results))['img']
        assert np.abs(hu - first)[..., [0, 1, 5, 6]].max() > 1.0
        np.testing.assert_array_equal(hu[..., 3], first[..., 3])


def test_m3dv_configs_carry_the_authors_test_settings():
    thresholds = dict(alignshift=0.001, tsm=0.00005, a3d=0.00005)  # densenet_{align,tsm,a3d}.py
    thresholds['2d'] = 0.005  # densenet_25d.py
    for arch, thr in thresholds.items():
        for d in (3, 7):
            cfg = Config.fromfile(m3dv_config_path(arch, d))
            t = cfg.model.test_cfg
            assert (t.rpn.nms_pre, t.rpn.max_per_img, t.rpn.nms.iou_threshold) == (6000, 300, 0.7)
            assert (t.rcnn.score_thr, t.rcnn.nms.iou_threshold, t.rcnn.max_per_img) == (thr, 0.5,
                                                                                        50)
            assert t.rpn.nms.offset == t.rcnn.nms.offset == 1  # +1 areas, as their NMS
            assert cfg.model.backbone.conv_mode == arch and cfg.model.backbone.num_slices == d
            assert (cfg.model.type == 'ThicknessAwareMaskRCNN') == (arch == 'alignshift')
            load = cfg.test_dataloader.dataset.pipeline[0]
            assert load.fraction_rule == 'first' and load.keep_thick_slices == (
                arch == 'alignshift')


def test_converted_checkpoint_runs_in_lesion_detector_and_is_checked(released):
    from acsdet.apis import LesionDetector
    from acsdet.io.ct_volume import CTVolume
    r = released['alignshift']
    hu = np.full((6, SIZE, SIZE), -800.0, np.float32)
    hu[:, 20:40, 24:44] = 40.0
    vol = CTVolume(
        hu=hu,
        spacing=(5.0, 0.8, 0.8),
        z_positions=np.arange(6) * 5.0,
        origin=np.zeros(3),
        direction=np.diag([1.0, 1.0, -1.0]),
        to_stored=((0, 1, 2), (False, ) * 3, (SIZE, SIZE, 6)),
        reference=None,
        source='phantom',
        name='phantom')
    det = LesionDetector(r['report']['config'], r['ckpt'], score_thr=0.0)
    preds, _ = det.predict_slices(vol, [2, 3])
    assert [k for k, *_ in preds] == [2, 3]
    for _, boxes, scores, _ in preds:
        assert len(scores) > 0 and np.all((boxes >= 0) & (boxes <= SIZE))
    with pytest.raises(CheckpointMismatch, match="conv_mode 'alignshift' vs 'tsm'"):
        LesionDetector(m3dv_config_path('tsm', 3), r['ckpt'])
    with pytest.raises(ValueError, match="fraction_rule='first'"):
        LesionDetector(r['report']['config'], r['ckpt'], volumetric=True)


def _backbone_only(tmp_path, arch='2d', d=3, name='b.pth', **kw):
    torch.manual_seed(0)
    m = nn.Module()
    m.backbone = ref.BACKBONES[arch](d)
    path = tmp_path / name
    save_m3dv_checkpoint(m, path, **kw)
    return path


def test_bad_checkpoints_get_one_line_errors(tmp_path):
    src = _backbone_only(tmp_path, name='alignshift_3slice.pth')
    out = str(tmp_path / 'out.pth')
    cases = []
    torch.save(
        {
            'features.conv0.weight': torch.zeros(64, 3, 7, 7),
            'classifier.weight': torch.zeros(2, 4)
        }, tmp_path / 'tv.pth')
    cases.append((tmp_path / 'tv.pth', None, 'torchvision classification state dict'))
    mmdet3 = {
        'backbone.layer1.0.conv1.weight': torch.zeros(1),
        'roi_head.bbox_head.fc_cls.weight': torch.zeros(1)
    }
    torch.save({'state_dict': mmdet3}, tmp_path / 'mmdet3.pth')
    cases.append((tmp_path / 'mmdet3.pth', None, 'MMDetection 2.x / 3.x detector'))
    ours = {
        'backbone.features.conv0.weight': torch.zeros(1),
        'roi_head.bbox_head.fc_cls.weight': torch.zeros(1)
    }
    torch.save({'state_dict': ours}, tmp_path / 'acsdet.pth')
    cases.append((tmp_path / 'acsdet.pth', None, r'an acsdet checkpoint .*use it as it is'))
    data = open(src, 'rb').read()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    cases.append((tmp_path / 'cut.pth', None, 'truncated or damaged'))
    cases.append((src, None, r'does not fit the 2d model of 2d_3slice.py: \d+ keys missing '
                  r'\(e.g. rpn_head.rpn_conv.weight, '))
    cases.append((src, 'a3d', 'arch a3d contradicts the keys, which are those of a 2d model'))
    for path, arch, message in cases:
        with pytest.raises(M3DVCheckpointError, match=message) as e:
            convert_m3dv_checkpoint(str(path), out, arch)
        assert str(path) in str(e.value) and '\n' not in str(e.value)
    assert not osp.exists(out)
    with pytest.raises(M3DVCheckpointError, match='replace the input'):
        convert_m3dv_checkpoint(str(src), str(src))


def test_tsm_and_alignshift_need_arch_or_their_config(tmp_path):
    shift = {k: v for k, v in ref.BACKBONES['tsm'](3).state_dict().items()}
    state = {f'backbone.{k}': v for k, v in shift.items()}
    with pytest.raises(M3DVCheckpointError, match="pass arch 'tsm' or 'alignshift'") as e:
        detect_arch(state, {}, 'x.pth')
    assert "pass --arch 'tsm' or 'alignshift'" in cli_message(e.value)
    assert detect_arch(state, {}, 'x.pth', 'alignshift') == ('alignshift', 3)
    text = {'config': _authors_config('alignshift', 3)}
    assert detect_arch(state, text, 'x.pth') == ('alignshift', 3)
    with pytest.raises(M3DVCheckpointError, match='contradicts the keys|its config names'):
        detect_arch(state, text, 'x.pth', 'tsm')


def test_command_line(tmp_path):
    src = _backbone_only(tmp_path)
    tool = osp.join(ROOT, 'tools', 'model_converters', 'm3dv_to_acsdet.py')
    run = subprocess.run(
        [sys.executable, tool, str(src), str(tmp_path / 'o.pth')],
        capture_output=True,
        text=True,
        cwd=ROOT)
    assert run.returncode == 2 and run.stdout == ''
    assert run.stderr.startswith(f'error: {src}: does not fit the 2d model of 2d_3slice.py: ')
    assert len(run.stderr.splitlines()) == 1
