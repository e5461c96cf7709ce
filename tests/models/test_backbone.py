"""TruncatedDenseNet, the decoder, MaskDiceLoss and the Table VII configs."""
import glob
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
from acsdet.models.backbones.densenet import densenet_features
from acsdet.testing import det_batch
from mmdet.models.losses import DiceLoss
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

from ..helpers import ROOT

register_all_modules()  # and the mmdet default scope


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def backbone(**kw):
    cfg = dict(type='TruncatedDenseNet', conv_mode='acs', num_slices=7)
    cfg.update(kw)
    return MODELS.build(cfg)


@pytest.mark.parametrize('d', [1, 3, 7])
def test_feature_shapes(d):
    m = backbone(num_slices=d).eval()
    with torch.no_grad():
        outs = m(torch.randn(2, d, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 256, 16, 24), (2, 512, 8, 12), (2, 1024, 4, 6)]
    with pytest.raises(ValueError, match='D=%d' % d):
        m(torch.randn(2, d + 2, 64, 64))


def test_even_num_slices_rejected():
    with pytest.raises(ValueError, match='odd'):
        backbone(num_slices=4)


def test_parameter_counts():
    acs, p25, p3d = (backbone(conv_mode=m) for m in ('acs', '2.5d', '3d'))
    twod = densenet_features(in_channels=1)
    collapse = sum(c * c * 7 for c in (256, 512, 1024))
    assert n_params(acs) == n_params(p25) == n_params(twod) + collapse
    assert n_params(p3d) > n_params(acs)


def _torchvision_state_dict():
    """A random state dict in torchvision DenseNet-121's format (4 blocks, norm5, classifier),
    with some keys in the legacy 'norm.1' style."""
    feats = densenet_features(in_channels=3, block_config=(6, 12, 24, 16))
    feats.add_module('norm5', nn.BatchNorm2d(1024))
    for p in feats.parameters():
        nn.init.normal_(p)
    sd = {f'features.{k}': v for k, v in feats.state_dict().items()}
    for k in list(sd):
        if 'denseblock2.denselayer3.norm1' in k:  # legacy name
            sd[k.replace('norm1', 'norm.1')] = sd.pop(k)
        elif k.endswith('running_var'):
            sd[k] = sd[k].abs() + 0.5
    sd['classifier.weight'] = torch.randn(1000, 1024)
    sd['classifier.bias'] = torch.randn(1000)
    return sd


@pytest.mark.parametrize('mode', ['acs', '2.5d', '3d'])
def test_pretrained_torchvision_weights_transfer(tmp_path, mode):
    sd = _torchvision_state_dict()
    path = tmp_path / 'densenet121.pth'
    torch.save(sd, path)
    m = backbone(conv_mode=mode, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    m.init_weights()
    got = m.state_dict()
    rep = m.pretrained_report
    # grey conv0 = sum of the RGB kernels; I3D inflation in '3d'
    conv0 = sd['features.conv0.weight'].sum(1, keepdim=True)
    if mode == '3d':
        assert got['features.conv0.weight'].shape == (64, 1, 7, 7, 7)
        torch.testing.assert_close(got['features.conv0.weight'].sum(2), conv0)
        w = got['features.denseblock3.denselayer24.conv2.weight']
        torch.testing.assert_close(w.sum(2), sd['features.denseblock3.denselayer24.conv2.weight'])
    else:
        torch.testing.assert_close(got['features.conv0.weight'], conv0)
        for k in ('features.denseblock3.denselayer24.conv2.weight',
                  'features.transition2.conv.weight',
                  'features.denseblock1.denselayer1.conv1.weight'):
            assert torch.equal(got[k], sd[k]), k
    for k in ('features.norm0.running_var', 'features.transition1.norm.weight',
              'features.denseblock3.denselayer10.norm2.running_mean'):
        assert torch.equal(got[k], sd[k]), k
    legacy = 'features.denseblock2.denselayer3.norm.1.weight'
    assert torch.equal(got['features.denseblock2.denselayer3.norm1.weight'], sd[legacy])
    assert 'features.denseblock2.denselayer3.norm1.weight' in rep['loaded']
    assert 'classifier.weight' in rep['unused'] and 'features.norm5.weight' in rep['unused']
    assert any(k.startswith('features.denseblock4') for k in rep['unused'])
    assert rep['not_loaded'] == [
        'depth_collapse.0.weight', 'depth_collapse.1.weight', 'depth_collapse.2.weight'
    ]


def test_centre_init_passes_the_key_slice_through():
    m = backbone(num_slices=3).eval()
    w = m.depth_collapse[0].weight
    assert torch.count_nonzero(w) == 256 and torch.all(w[:, :, 1].diagonal() == 1)


def test_frozen_stages_norm_eval_and_checkpointing():
    m = backbone(frozen_stages=1, norm_eval=True)
    m.train()
    assert not m.features.conv0.weight.requires_grad
    assert not m.features.denseblock1.denselayer1.conv2.weight.requires_grad
    assert not m.depth_collapse[0].weight.requires_grad
    assert m.features.transition1.conv.weight.requires_grad
    assert not m.features.norm0.training and not m.features.denseblock2.denselayer1.norm1.training
    ref = backbone(num_slices=3)
    cp = backbone(num_slices=3, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 32, 32)
    a, b = ref(x), cp(x)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)
    sum(o.sum() for o in a).backward()
    sum(o.sum() for o in b).backward()
    torch.testing.assert_close(
        ref.features.conv0.weight.grad, cp.features.conv0.weight.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('norm', [dict(type='GN', num_groups=8), dict(type='SyncBN')])
def test_norm_cfg_variants_build(norm):
    m = backbone(num_slices=3, norm_cfg=norm)
    kind = nn.GroupNorm if norm['type'] == 'GN' else nn.SyncBatchNorm
    assert isinstance(m.features.norm0, kind)
    if norm['type'] == 'GN':
        assert m(torch.randn(1, 3, 32, 32))[0].shape == (1, 256, 8, 8)


def test_top_down_decoder_single_stride4_map():
    dec = MODELS.build(dict(type='TopDownDecoder'))
    feats = (torch.randn(1, 256, 16, 16), torch.randn(1, 512, 8, 8), torch.randn(1, 1024, 4, 4))
    (out, ) = dec(feats)
    assert out.shape == (1, 512, 16, 16)
    # nearest x2 upsampling and addition, by hand
    l0, l1, l2 = (lat(f) for lat, f in zip(dec.laterals, feats))
    up = lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2)  # noqa: E731
    torch.testing.assert_close(out, l0 + up(l1 + up(l2)))
    assert len(MODELS.build(dict(type='TopDownDecoder', num_outs=3))(feats)) == 3


def test_mmdet_dice_loss_is_zero_for_one_class_but_mask_dice_loss_is_not():
    pred = torch.randn(4, 1, 28, 28)
    target = (torch.rand(4, 28, 28) > 0.5).float()
    labels = torch.zeros(4, dtype=torch.long)
    assert DiceLoss(use_sigmoid=True)(pred, target, labels) == 0  # the pitfall
    loss = MODELS.build(dict(type='MaskDiceLoss', use_sigmoid=True))(pred, target, labels)
    expected = DiceLoss(use_sigmoid=True)(pred[:, 0], target)
    assert loss > 0 and torch.isclose(loss, expected)


CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'deeplesion_*.py')))


def _batch(d, size=64, n=1):
    images = []
    for _ in range(n):
        img = torch.rand(d, size, size)
        img[:, 20:40, 24:44] += 1.0
        images.append(img)
    return det_batch(images, (24, 20, 44, 40))


def _model(config):
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None  # no ImageNet file here
    return MODELS.build(cfg.model), cfg.model.backbone.num_slices


@pytest.mark.parametrize('config', CONFIGS, ids=lambda c: osp.basename(c)[:-3])
def test_config_builds_and_infers(config):
    cfg = Config.fromfile(config)
    assert cfg.default_scope == 'mmdet' and cfg.custom_imports['imports'] == ['acsdet.all_modules']
    rcnn = cfg.model.test_cfg.rcnn
    assert rcnn.max_per_img <= 50 and rcnn.score_thr <= 0.005
    assert cfg.model.roi_head.mask_head.loss_mask.type == 'MaskDiceLoss'
    model, d = _model(config)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(_batch(d), training=False)
        (pred, ) = model(**data, mode='predict')
    inst = pred.pred_instances
    assert inst.bboxes.shape[1] == 4 and len(inst.bboxes) <= 50
    assert len(inst.masks) == len(inst.scores)


def test_one_training_step_all_losses_positive_and_grads_reach_conv0():
    model, d = _model(osp.join(ROOT, 'configs', 'deeplesion_acs_7slice.py'))
    model.train()
    data = model.data_preprocessor(_batch(d, n=2), training=True)
    losses = model(**data, mode='loss')
    total = 0
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'):
        v = losses[key]
        v = sum(v) if isinstance(v, list) else v
        assert torch.isfinite(v) and v > 0, (key, v)
        total = total + v
    total.backward()
    g = model.backbone.features.conv0.weight.grad
    assert g is not None and torch.count_nonzero(g) > 0


ALL_CONFIGS = sorted(
    c for c in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in c)


@pytest.mark.parametrize('config', ALL_CONFIGS, ids=lambda c: osp.relpath(c, ROOT))
def test_one_num_slices_per_config(config):
    """The slices every pipeline loads are the slices the backbone expects."""
    cfg = Config.fromfile(config)
    d = cfg.model.backbone.num_slices
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        steps = [s for s in cfg[loader].dataset.pipeline if s.type == 'LoadDeepLesionSlices']
        assert len(steps) == 1 and steps[0].num_slices == d, (loader, steps)
    assert 'visualization' not in cfg.default_hooks  # 16-bit slices: see default_runtime.py


@pytest.mark.parametrize('config', ALL_CONFIGS, ids=lambda c: osp.relpath(c, ROOT))
def test_meta_keys_have_one_home(config):
    """Every pipeline packs the meta keys of the base dataset config: training carries the
    slice interval (AlignShift's thickness), testing what FROCMetric needs, and patient-CT
    inference what a volume sample has of the test keys."""
    from acsdet.datasets.transforms import LoadVolumeSlices
    cfg = Config.fromfile(config)
    for loader, keys in (('train_dataloader', cfg.train_meta_keys),
                         ('val_dataloader', cfg.test_meta_keys), ('test_dataloader',
                                                                  cfg.test_meta_keys)):
        pack = [s for s in cfg[loader].dataset.pipeline if s.type == 'PackDetInputs']
        assert len(pack) == 1 and tuple(pack[0].meta_keys) == tuple(keys), (loader, pack)
    assert 'slice_interval' in cfg.train_meta_keys
    assert {'instances', 'slice_interval', 'key_slice'} <= set(cfg.test_meta_keys)
    assert set(LoadVolumeSlices.META_KEYS) - set(cfg.test_meta_keys) == {'key_index'}
