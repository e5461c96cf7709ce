"""TSM and AlignShift: the operators against a dense reference written from the rule, the
converter and backbone modes, the thickness reaching every layer, and the configs."""
import glob
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config

import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
from acsdet.converters import convert
from acsdet.models.backbones.densenet import densenet_features
from acsdet.models.detectors import sample_thickness
from acsdet.ops import Conv2_5d
from acsdet.ops.shift import AlignShiftConv, TSMConv, alignshift_alpha, slice_shift
from acsdet.testing import det_batch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample

from ..helpers import ROOT, seen_thickness


def reference_shift(x, fold, keep=None, zero_pad=True):
    """The rule, slice by slice: channels [0, fold) blend slice d with slice d + 1, channels
    [fold, 2 fold) with slice d - 1, by (keep, 1 - keep); a slice past an end is zero (zero_pad)
    or the edge slice itself; the rest are copied."""
    n, c, d = x.shape[:3]
    keep = torch.zeros(n, dtype=x.dtype) if keep is None else keep.to(x.dtype)
    out = x.clone()
    for b in range(n):
        k = keep[b]
        for z in range(d):
            for ch, nb in ((slice(0, fold), z + 1), (slice(fold, 2 * fold), z - 1)):
                if 0 <= nb < d:
                    other = x[b, ch, nb]
                else:
                    other = torch.zeros_like(x[b, ch, z]) if zero_pad else x[b, ch, z]
                out[b, ch, z] = k * x[b, ch, z] + (1 - k) * other
    return out


@pytest.mark.parametrize('d', [1, 2, 5])
@pytest.mark.parametrize('zero_pad', [True, False])
@pytest.mark.parametrize('kind', ['tsm', 'alignshift'])
def test_shift_equals_reference_forward_and_backward(kind, zero_pad, d):
    x = torch.randn(3, 16, d, 4, 5, dtype=torch.float64)
    keep = alignshift_alpha(torch.tensor([1.0, 2.5, 5.0], dtype=torch.float64), 2.0)
    keep = None if kind == 'tsm' else keep
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = slice_shift(xa, 2, keep, zero_pad)
    yb = reference_shift(xb, 2, keep, zero_pad)
    torch.testing.assert_close(ya, yb, rtol=0, atol=1e-12)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=1e-12)
    # the folds really moved (d > 1) and the rest did not
    assert torch.equal(ya[:, 4:], x[:, 4:])
    if d > 1:
        assert not torch.allclose(ya[:, :4], x[:, :4])


def test_alignshift_alpha_rule():
    t = torch.tensor([0.5, 1.0, 2.0, 2.5, 5.0, 10.0])
    torch.testing.assert_close(alignshift_alpha(t, 2.0), torch.tensor([0, 0, 0, 0.2, 0.6, 0.8]))


@pytest.mark.parametrize('cls', [TSMConv, AlignShiftConv])
def test_shift_conv_is_shift_then_2_5d_conv(cls):
    torch.manual_seed(0)
    op = cls(16, 12, 3, padding=1, n_fold=8).double()
    plain = Conv2_5d(16, 12, 3, padding=1).double()
    plain.load_state_dict(op.state_dict())  # the 2D weight layout: 2D checkpoints load
    x = torch.randn(2, 16, 5, 9, 9, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.25, 5.0], dtype=torch.float64)
    keep = None if cls is TSMConv else alignshift_alpha(t, 2.0)
    zero_pad = cls is TSMConv
    y = op(x) if cls is TSMConv else op(x, t)
    ref = plain(reference_shift(x, 2, keep, zero_pad))
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-10)
    g = torch.randn_like(y)
    (gx, gw) = torch.autograd.grad(y, (x, op.weight), g)
    (rx, rw) = torch.autograd.grad(ref, (x, plain.weight), g)
    torch.testing.assert_close(gx, rx, rtol=0, atol=1e-10)
    torch.testing.assert_close(gw, rw, rtol=0, atol=1e-10)
    assert torch.autograd.gradcheck(
        lambda a: op(a, t)
        if cls is AlignShiftConv else op(a), (x[:, :, :3, :5, :5].detach().requires_grad_(), ),
        fast_mode=True)
    op.shift = False  # off: a plain 2.5D convolution
    torch.testing.assert_close(op(x) if cls is TSMConv else op(x, t), plain(x))


def _saved_bytes(fn, x):
    """Bytes of the distinct storages autograd keeps for the backward pass of ``fn(x)``."""
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(saved.values())


@pytest.mark.parametrize('padding', [1, 'same'])
@pytest.mark.parametrize('cls', [TSMConv, AlignShiftConv])
def test_shift_keeps_no_activation_beyond_a_plain_convolution(cls, padding):
    """After a ReLU (which keeps its output), the shift convolution keeps nothing more than a
    plain 2.5D convolution: no shifted copy (the 'same' padding path is plain autograd and does
    keep one)."""
    op = cls(32, 32, 3, padding=padding)
    plain = Conv2_5d(32, 32, 3, padding=1)
    x = torch.randn(2, 32, 7, 16, 16, requires_grad=True)
    t = torch.tensor([1.0, 5.0])
    shifted = _saved_bytes(lambda a: op(F.relu(a)) if cls is TSMConv else op(F.relu(a), t), x)
    conv_only = _saved_bytes(lambda a: plain(F.relu(a)), x)
    if padding == 1:
        assert conv_only <= shifted <= conv_only + 64, (shifted, conv_only)
    else:
        assert shifted >= conv_only + x.numel() * 4


@pytest.mark.parametrize('cls', [TSMConv, AlignShiftConv])
def test_lean_path_equals_plain_autograd(cls):
    """The memory-lean Function (int padding) gives the autograd composition's values and
    gradients (checked through the 'same' padding path, the same numbers for K = 3)."""
    torch.manual_seed(0)
    lean = cls(16, 8, 3, padding=1, n_fold=4, bias=True).double()
    auto = cls(16, 8, 3, padding='same', n_fold=4, bias=True).double()
    auto.load_state_dict(lean.state_dict())
    x = torch.randn(2, 16, 4, 6, 6, dtype=torch.float64)
    t = torch.tensor([1.5, 4.0], dtype=torch.float64)
    outs = []
    for op in (lean, auto):
        xa = x.clone().requires_grad_()
        y = op(xa) if cls is TSMConv else op(xa, t)
        y.backward(torch.ones_like(y))
        outs.append((y.detach(), xa.grad, op.weight.grad, op.bias.grad))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_alignshift_needs_thickness_and_checks_it():
    op = AlignShiftConv(16, 8, 1)
    x = torch.randn(2, 16, 3, 4, 4)
    with pytest.raises(RuntimeError, match='thickness'):
        op(x)
    with pytest.raises(ValueError, match='3 thicknesses for a batch of 2'):
        op(x, torch.tensor([1.0, 2.0, 3.0]))


def test_convert_modes_replace_every_conv_and_keep_2d_weights():
    feats = densenet_features(
        in_channels=1, growth_rate=8, block_config=(2, 2, 2), num_init_features=16)
    for mode, cls in (('tsm', TSMConv), ('alignshift', AlignShiftConv)):
        opts = dict(n_fold=4, ref_thickness=3.0) if mode == 'alignshift' else dict(n_fold=4)
        m = convert(feats, mode, **opts)
        n2d = sum(isinstance(c, nn.Conv2d) for c in feats.modules())
        convs = [c for c in m.modules() if isinstance(c, Conv2_5d)]
        assert len(convs) == n2d and all(type(c) is cls for c in convs)
        assert all(c.n_fold == 4 for c in convs)
        if mode == 'alignshift':
            assert all(c.ref_thickness == 3.0 for c in convs)
        m.load_state_dict(feats.state_dict())  # the 2D state dict loads unchanged
    with pytest.raises(ValueError, match='keeps depth'):
        convert(feats, 'alignshift', pool_depth=2)
    with pytest.raises(ValueError, match='n_fold'):
        convert(feats, 'tsm', n_fold=1)


def _backbone(mode, **kw):
    cfg = dict(
        type='TruncatedDenseNet',
        conv_mode=mode,
        num_slices=5,
        growth_rate=16,
        block_config=(2, 2, 2),
        num_init_features=32,
        collapse_init='kaiming')
    cfg.update(kw)
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


def test_thickness_reaches_every_alignshift_layer_and_only_alignshift_uses_it():
    x = torch.randn(2, 5, 32, 32)
    thin, thick = torch.tensor([1.0, 1.0]), torch.tensor([5.0, 1.0])
    m = _backbone('alignshift')
    with torch.no_grad():
        a = m(x, thin)
        with seen_thickness(m) as seen:
            b = m(x, thick)
    layers = [n for n, c in m.named_modules() if isinstance(c, AlignShiftConv) and c.shift]
    assert layers and set(layers) <= set(seen)  # every shifting layer got it, as an argument
    assert all(len(seen[n]) == 1 and torch.equal(seen[n][0], thick) for n in layers)
    assert not any(hasattr(c, 'thickness') for c in m.modules())  # no per-batch module state
    # the dense layers shift; the stem and the transitions do not (as the authors' backbone)
    for name, c in m.features.named_modules():
        if isinstance(c, AlignShiftConv):
            assert c.shift == ('denselayer' in name), name
    for fa, fb in zip(a, b):  # sample 0's thickness changed: its features did, sample 1's not
        assert not torch.allclose(fa[0], fb[0])
        torch.testing.assert_close(fa[1], fb[1])
    with pytest.raises(ValueError, match='needs the slice thickness'):
        m(x)
    with pytest.raises(ValueError, match='positive'):
        m(x, torch.tensor([1.0, float('nan')]))
    for mode in ('tsm', '2.5d', 'acs'):
        other = _backbone(mode)
        with torch.no_grad():
            for fa, fb in zip(other(x, thin), other(x, thick)):
                assert torch.equal(fa, fb)
    # TSM: alignshift at thickness <= 2 mm with zero padding is TSM
    tsm = _backbone('tsm')
    assert all(type(c) is TSMConv for c in tsm.modules() if isinstance(c, Conv2_5d))


def test_sample_thickness_errors_name_the_image():
    ok = DetDataSample(metainfo=dict(img_path='a/001.png', slice_interval=2.5))
    assert sample_thickness([ok]) == [2.5]
    bad = DetDataSample(metainfo=dict(img_path='b/002.png'))
    with pytest.raises(ValueError, match=r'b/002\.png.*slice_interval=None'):
        sample_thickness([ok, bad])


SHIFT_CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs', 'deeplesion_tsm_*.py')) +
    glob.glob(osp.join(ROOT, 'configs', 'deeplesion_alignshift_*.py')))


def test_shift_configs_are_the_authors_settings():
    """Each TSM / AlignShift config: its mode, D, the thickness-aware detector for AlignShift, and
    the authors' input (slices as they are where thicker than 2 mm) except in '_resampled'."""
    names = {osp.basename(c)[:-3]: c for c in SHIFT_CONFIGS}
    assert sorted(names) == sorted([
        'deeplesion_tsm_7slice', 'deeplesion_tsm_3slice', 'deeplesion_alignshift_7slice',
        'deeplesion_alignshift_3slice', 'deeplesion_alignshift_7slice_resampled'
    ])
    for name, path in names.items():
        cfg = Config.fromfile(path)
        mode = 'tsm' if '_tsm_' in name else 'alignshift'
        slices = 3 if '3slice' in name else 7
        assert cfg.model.backbone.conv_mode == mode and cfg.model.backbone.num_slices == slices
        assert (cfg.model.type == 'ThicknessAwareMaskRCNN') == (mode == 'alignshift'), name
        load = [
            s for s in cfg.test_dataloader.dataset.pipeline if s['type'] == 'LoadDeepLesionSlices'
        ][0]
        assert load['num_slices'] == slices
        thick = mode == 'alignshift' and not name.endswith('_resampled')
        assert bool(load.get('keep_thick_slices', False)) == thick, name


@pytest.mark.parametrize('config', SHIFT_CONFIGS, ids=lambda c: osp.basename(c)[:-3])
def test_shift_config_builds_and_trains_a_step(config):
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None  # no ImageNet file here
    mode = cfg.model.backbone.conv_mode
    d = cfg.model.backbone.num_slices
    for pipe in (cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline):
        load = pipe[0]
        assert load.type == 'LoadDeepLesionSlices' and load.num_slices == d
        if mode == 'alignshift':  # the thickness travels with every sample
            assert 'slice_interval' in pipe[-1].meta_keys
            assert load.get('keep_thick_slices', False) == ('resampled' not in config)
    if mode == 'alignshift':
        assert cfg.model.type == 'ThicknessAwareMaskRCNN'
    model = MODELS.build(cfg.model)
    model.train()
    batch = det_batch([torch.rand(d, 64, 64) for _ in range(2)], (20, 18, 44, 40))
    for s, t in zip(batch['data_samples'], (1.0, 5.0)):
        s.set_metainfo(dict(slice_interval=t))
    data = model.data_preprocessor(batch, training=True)
    with seen_thickness(model) as seen:
        losses = model(**data, mode='loss')
    total = sum(v if not isinstance(v, list) else sum(v) for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total) and total > 0
    total.backward()
    g = model.backbone.features.denseblock1.denselayer1.conv2.weight.grad
    assert g is not None and torch.count_nonzero(g) > 0
    layer = 'backbone.features.denseblock1.denselayer1.conv2'
    if mode == 'alignshift':
        assert torch.equal(seen[layer][0], torch.tensor([1.0, 5.0]))
    # validation / test: predict hands the samples' thickness on too
    model.eval()
    for s in batch['data_samples']:
        s.set_metainfo(dict(slice_interval=2.5))
    with torch.no_grad(), seen_thickness(model) as seen:
        preds = model(**model.data_preprocessor(batch, training=False), mode='predict')
    assert len(preds) == 2
    if mode == 'alignshift':
        assert torch.equal(seen[layer][0], torch.tensor([2.5, 2.5]))
        # a direct call after that batch does not inherit its thickness: it needs its own
        with pytest.raises(ValueError, match='needs the slice thickness'):
            model.extract_feat(model.data_preprocessor(batch, training=False)['inputs'])
