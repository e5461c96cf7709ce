"""A3D: asymmetric slice fusion as an operator, a converter mode and a backbone mode."""
import pytest
import torch
import torch.nn as nn

import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
from acsdet.converters import convert
from acsdet.ops import A3DConv, SliceFusion
from mmdet.registry import MODELS


def test_slice_fusion_matches_its_definition_and_starts_near_identity():
    f = SliceFusion(3, 5)
    w = f.weight.detach()
    assert w.shape == (5, 5, 3)
    assert (w - torch.eye(5).unsqueeze(-1)).abs().max() <= 0.1 + 1e-6
    x = torch.randn(2, 3, 5, 4, 6)
    y = f(x)
    for c in range(3):
        for k in range(5):
            expected = sum(x[:, c, d] * w[d, k, c] for d in range(5))
            torch.testing.assert_close(y[:, c, k], expected, rtol=1e-5, atol=1e-5)
    # asymmetric: shifting the input along depth does not shift the output
    assert not torch.allclose(f(x.roll(1, 2)), y.roll(1, 2), atol=1e-3)
    with pytest.raises(ValueError, match=r'\(N, 3, 5, H, W\)'):
        f(torch.randn(2, 3, 4, 4, 6))


def net2d():
    return nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1),
        nn.MaxPool2d(2), nn.Conv2d(8, 4, 3, padding=1))


def test_a3d_at_identity_equals_2_5d_and_parameter_count():
    net = net2d().eval()
    a3d = convert(net, 'a3d', num_slices=5).eval()
    p25 = convert(net, '2.5d').eval()
    fusions = [m for m in a3d.modules() if isinstance(m, A3DConv)]
    assert len(fusions) == 3  # every convolution, the 1x1 included (the authors' placement)
    extra = sum(5 * 5 * m.in_channels for m in fusions)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(a3d) == n(p25) + extra == n(net) + extra
    x = torch.randn(2, 2, 5, 8, 8)
    assert not torch.allclose(a3d(x), p25(x), atol=1e-4)  # the noisy initial fusion mixes slices
    for m in fusions:
        m.fusion.reset_parameters(noise=0.0)
    torch.testing.assert_close(a3d(x), p25(x), rtol=1e-5, atol=1e-5)


def test_gradients_reach_the_fusion_matrices():
    a3d = convert(net2d(), 'a3d', num_slices=3)
    a3d(torch.randn(1, 2, 3, 8, 8)).square().sum().backward()
    for m in a3d.modules():
        if isinstance(m, A3DConv):
            assert m.fusion.weight.grad is not None and m.fusion.weight.grad.abs().sum() > 0


def test_converter_argument_checks():
    with pytest.raises(ValueError, match='num_slices'):
        convert(net2d(), 'a3d')
    with pytest.raises(ValueError, match='keeps depth'):
        convert(net2d(), 'a3d', num_slices=3, pool_depth=2)


def test_a3d_backbone_mode_equals_2_5d_at_identity():
    a3d = MODELS.build(dict(type='TruncatedDenseNet', conv_mode='a3d', num_slices=3)).eval()
    p25 = MODELS.build(dict(type='TruncatedDenseNet', conv_mode='2.5d', num_slices=3)).eval()
    missing, unexpected = a3d.load_state_dict(p25.state_dict(), strict=False)
    assert not unexpected and missing and all('fusion' in k for k in missing)
    fused = {n for n, m in a3d.named_modules() if isinstance(m, A3DConv) and m.fusion is not None}
    # the authors' placement: both convolutions of every dense layer, not conv0 or transitions
    assert len(fused) == 2 * (6 + 12 + 24)
    assert all('.denselayer' in n and n.endswith(('conv1', 'conv2')) for n in fused)
    assert a3d.features.conv0.fusion is None and a3d.features.transition1.conv.fusion is None
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(a3d) == n(p25) + sum(
        9 * m.in_channels for m in a3d.modules() if isinstance(m, A3DConv) and m.fusion is not None)
    for m in a3d.modules():
        if isinstance(m, A3DConv) and m.fusion is not None:
            m.fusion.reset_parameters(noise=0.0)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for u, v in zip(a3d(x), p25(x)):
            torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-4)
