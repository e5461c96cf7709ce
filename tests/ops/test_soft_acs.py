"""MeanACSConv and SoftACSConv against a dense reference in float64 (forward and every gradient)
over the argument grid of the ACS tests, against the official acsconv SoftACSConv where its
shape logic is right, and as conv modes."""
import pytest
import torch
import torch.nn as nn

from acsdet.converters import convert
from acsdet.ops import MeanACSConv, SoftACSConv

from .test_acs_conv import GRID, too_small


def reference(module, x):
    """The variants as the paper defines them, in torch's own Conv3d semantics: f_a, f_c, f_s
    (the 2D kernel on the axial, coronal and sagittal plane through the centre), mixed by the
    mean or by softmax(soft_w_core) per output channel, plus the bias once."""
    conv = nn.Conv3d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                     module.padding, module.dilation, module.groups, False,
                     module.padding_mode).double()
    w = module.weight
    co, ci, k, _ = w.shape
    c = k // 2
    planes = []
    for axis in range(3):  # D (axial), H (coronal), W (sagittal): the collapsed axis
        mask = torch.zeros(k, k, k, dtype=w.dtype)
        mask.select(axis, c).fill_(1)
        planes.append(mask * w.unsqueeze(2 + axis))  # broadcast along the collapsed axis
    f_a, f_c, f_s = (conv._conv_forward(x, p, None) for p in planes)
    if hasattr(module, 'soft_w_core'):
        soft_w = module.soft_w_core.softmax(-1)
        f = sum(f_v * soft_w[:, v].view(1, co, 1, 1, 1) for v, f_v in enumerate((f_a, f_c, f_s)))
    else:
        f = (f_a + f_c + f_s) / 3
    return f if module.bias is None else f + module.bias.view(1, co, 1, 1, 1)


def check(module, x):
    module = module.double()
    if hasattr(module, 'soft_w_core'):
        nn.init.normal_(module.soft_w_core)  # not the uniform start: the weights must matter
    params = dict(module.named_parameters())
    x1 = x.double().clone().requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    y1 = module(x1)
    g = torch.randn_like(y1)
    grads1 = torch.autograd.grad(y1, [x1] + list(params.values()), g)
    y2 = reference(module, x2)
    grads2 = torch.autograd.grad(y2, [x2] + list(params.values()), g)
    torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-10)
    for name, a, b in zip(['input'] + list(params), grads1, grads2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize('method', ['dense', 'planar'])
@pytest.mark.parametrize('k,stride,padding,dilation', GRID)
def test_soft_acs_matches_the_reference(k, stride, padding, dilation, method):
    conv = SoftACSConv(4, 7, k, stride=stride, padding=padding, dilation=dilation, method=method)
    x = torch.randn(2, 4, 7, 9, 8)
    if too_small(x, k, padding, dilation):
        with pytest.raises(ValueError, match='too small'):  # nn.Conv3d raises too
            conv(x)
    else:
        check(conv, x)


@pytest.mark.parametrize('cls', [MeanACSConv, SoftACSConv])
@pytest.mark.parametrize('padding_mode', ['zeros', 'reflect', 'replicate', 'circular'])
@pytest.mark.parametrize('padding', [1, (1, 2, 0), 'same', 'valid'])
def test_padding_modes_groups_and_bias(cls, padding_mode, padding):
    check(
        cls(4, 6, 3, padding=padding, padding_mode=padding_mode, dilation=(1, 2, 1)),
        torch.randn(1, 4, 6, 7, 8))
    check(cls(4, 6, 3, padding=1, groups=2, bias=False), torch.randn(2, 4, 5, 6, 6))


def test_soft_weights_start_uniform_and_mean_is_soft_at_the_start():
    soft = SoftACSConv(3, 5, 3, padding=1)
    assert torch.equal(soft.soft_w_core, torch.zeros(5, 3))
    mean = MeanACSConv(3, 5, 3, padding=1)
    mean.load_state_dict({k: v for k, v in soft.state_dict().items() if k != 'soft_w_core'})
    x = torch.randn(1, 3, 5, 6, 6)
    torch.testing.assert_close(soft(x), mean(x))
    assert soft.depth_radius == 1 and SoftACSConv(3, 5, 3, dilation=2).depth_radius == 2


OFFICIAL_RIGHT = [(1, 1, 0), (3, 1, 1), (3, 2, 1), (3, 1, 0), (5, 1, 2), (5, 2, 2)]


@pytest.mark.parametrize('mean', [False, True])
@pytest.mark.parametrize('k,stride,padding', OFFICIAL_RIGHT)
def test_state_dicts_interchange_with_the_official_operator(k, stride, padding, mean):
    from acsconv.operators import SoftACSConv as OfficialSoftACSConv
    ours = (MeanACSConv if mean else SoftACSConv)(4, 6, k, stride=stride, padding=padding).double()
    if not mean:
        nn.init.normal_(ours.soft_w_core)
    official = OfficialSoftACSConv(4, 6, k, stride=stride, padding=padding, mean=mean).double()
    official.load_state_dict(ours.state_dict())  # strict: the same keys and shapes
    x = torch.randn(2, 4, 7, 9, 8, dtype=torch.float64)
    torch.testing.assert_close(ours(x), official(x), rtol=1e-10, atol=1e-10)


def test_conv_modes_keep_every_2d_weight():
    net2d = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    for mode, cls in (('mean-acs', MeanACSConv), ('soft-acs', SoftACSConv)):
        net3d = convert(net2d, mode)
        assert isinstance(net3d[0], cls) and not isinstance(net3d[2], MeanACSConv)
        missing, unexpected = net3d.load_state_dict(net2d.state_dict(), strict=False)
        assert unexpected == [] and missing == (['0.soft_w_core'] if mode == 'soft-acs' else [])
        assert net3d(torch.randn(1, 3, 5, 8, 8)).shape == (1, 4, 5, 8, 8)
