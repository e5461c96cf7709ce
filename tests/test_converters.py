"""convert(model, mode): 2D models to ACS / 2.5D / 3D, weights carried over exactly."""
from dataclasses import dataclass, fields

import pytest
import torch
import torch.nn as nn

import acsdet.models  # noqa: F401  (registers TruncatedDenseNet)
from acsdet.converters import ConversionError, convert
from acsdet.ops import ACSConv, ACSConvTranspose, Conv2_5d
from mmdet.registry import MODELS


class Net2d(nn.Module):
    """A 2D CNN with every convertible layer kind: convs (3x3, 1x1, strided, dilated, grouped),
    norms, pools, a transposed conv, upsampling, dropout and a linear head."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, 12, 3, padding=1, bias=False),
            nn.BatchNorm2d(12),
            nn.ReLU(inplace=True),
            nn.Conv2d(12, 12, 3, stride=2, padding=2, dilation=2, groups=3),
            nn.GroupNorm(3, 12),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(12, 9, 1),
            nn.InstanceNorm2d(9, affine=True),
            nn.Dropout2d(0.1),
            nn.AvgPool2d(3, 1, 1),
            nn.ConvTranspose2d(9, 6, 3, stride=2, padding=1, output_padding=1),
            nn.Upsample(scale_factor=2, mode='nearest'),
            nn.Conv2d(6, 6, 3, padding=1, padding_mode='reflect'),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize('mode', ['acs', '2.5d', '3d'])
def test_converted_net_runs_on_volumes(mode):
    net = Net2d()
    net3d = convert(net, mode)
    assert type(net3d) is Net2d  # an ordinary module of the same class, no proxy
    assert isinstance(net.features[0], nn.Conv2d)  # the original is untouched
    x = torch.randn(2, 2, 5, 16, 16)
    feats = net3d.features(x)
    # pooling is 1 x k x k and strided convs keep depth: D stays 5, H and W as in 2D
    assert feats.shape == (2, 6, 5) + net.features(x[:, :, 0]).shape[-2:]
    out = net3d(x)
    assert out.shape == (2, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in net3d.parameters() if p.requires_grad)


def test_layer_types():
    acs = convert(Net2d(), 'acs').features
    assert isinstance(acs[0], ACSConv) and isinstance(acs[3], ACSConv)
    assert isinstance(acs[1], nn.BatchNorm3d) and isinstance(acs[4], nn.GroupNorm)
    assert isinstance(acs[7], Conv2_5d) and acs[7].kernel_size == (1, 1, 1)
    assert isinstance(acs[8], nn.InstanceNorm3d) and isinstance(acs[9], nn.Dropout3d)
    assert isinstance(acs[6], nn.MaxPool3d) and acs[6].kernel_size == (1, 2, 2)
    assert isinstance(acs[11], ACSConvTranspose)
    assert acs[12].scale_factor == (1.0, 2.0, 2.0)
    assert acs[3].stride == (1, 2, 2) and acs[3].dilation == (2, 2, 2) and acs[3].groups == 3
    assert acs[13].padding_mode == 'reflect'
    d3 = convert(Net2d(), '3d').features
    assert isinstance(d3[0], nn.Conv3d) and d3[0].kernel_size == (3, 3, 3)
    pooled = convert(Net2d(), 'acs', pool_depth=2, conv_depth_stride=None).features
    assert pooled[6].kernel_size == (2, 2, 2) and pooled[3].stride == (2, 2, 2)


@pytest.mark.parametrize('mode', ['acs', '2.5d'])
def test_parameter_count_and_state_dict_transfer_1to1(mode):
    net = Net2d()
    net3d = convert(net, mode)
    assert n_params(net3d) == n_params(net)
    sd2, sd3 = net.state_dict(), net3d.state_dict()
    assert sd2.keys() == sd3.keys()
    for key in sd2:
        assert torch.equal(sd2[key], sd3[key]), key
    # and a fresh 2D checkpoint loads straight into the converted model
    other = Net2d()
    net3d.load_state_dict(other.state_dict())
    assert torch.equal(net3d.features[0].weight, other.features[0].weight)


def test_3d_inflates_i3d_and_has_more_parameters():
    net = Net2d()
    net3d = convert(net, '3d')
    assert n_params(net3d) > n_params(net)
    w2, w3 = net.features[0].weight, net3d.features[0].weight
    assert w3.shape == (12, 2, 3, 3, 3)
    torch.testing.assert_close(w3.sum(2), w2)  # repeat along depth, divide by K
    torch.testing.assert_close(w3[:, :, 0], w2 / 3)
    # a depth-constant ("boring") volume gives the 2D response on interior slices
    conv2d = nn.Conv2d(3, 4, 3, padding=1)
    conv3d = convert(conv2d, '3d')
    x2 = torch.randn(1, 3, 8, 8)
    x3 = x2.unsqueeze(2).expand(1, 3, 5, 8, 8)
    torch.testing.assert_close(conv3d(x3)[:, :, 2], conv2d(x2), rtol=1e-5, atol=1e-5)
    random3d = convert(net, '3d', inflate=False)
    assert not torch.allclose(random3d.features[0].weight.sum(2), w2)


def test_2_5d_equals_the_2d_net_slice_by_slice():
    # GroupNorm and InstanceNorm normalise over depth too, so they are left out here
    f = Net2d().features
    net = nn.Sequential(*[f[i] for i in (0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 12, 13)]).eval()
    net25 = convert(net, '2.5d').eval()
    x = torch.randn(2, 2, 3, 16, 16)
    y3 = net25(x)
    for d in range(3):
        torch.testing.assert_close(y3[:, :, d], net(x[:, :, d]), rtol=1e-4, atol=1e-5)


def test_acs_axial_part_equals_2d_on_each_slice():
    conv = nn.Conv2d(4, 9, 3, padding=1)
    acs = convert(conv, 'acs')
    x = torch.randn(1, 4, 5, 8, 8)
    a = acs.acs_kernel_split[0]
    for d in range(5):
        torch.testing.assert_close(acs(x)[:, :a, d], conv(x[:, :, d])[:, :a], rtol=1e-5, atol=1e-5)


def test_conv_transpose_acs_matches_dense():
    tconv = nn.ConvTranspose2d(4, 7, 3, stride=2, padding=1, output_padding=1)
    acs = convert(tconv, 'acs', conv_depth_stride=None)
    a, c, _ = acs.acs_kernel_split
    dense = nn.ConvTranspose3d(4, 7, 3, stride=2, padding=1, output_padding=1)
    w = torch.zeros_like(dense.weight)
    with torch.no_grad():
        w[:, :a, 1] = tconv.weight[:, :a]
        w[:, a:a + c, :, 1] = tconv.weight[:, a:a + c]
        w[:, a + c:, :, :, 1] = tconv.weight[:, a + c:]
        dense.weight.copy_(w)
        dense.bias.copy_(tconv.bias)
    x = torch.randn(2, 4, 3, 5, 6)
    torch.testing.assert_close(acs(x), dense(x), rtol=1e-5, atol=1e-5)
    up = convert(nn.ConvTranspose2d(4, 6, 2, stride=2), 'acs')  # the usual decoder upsampling
    # K=2 along depth at depth stride 1 adds a slice, exactly as nn.ConvTranspose3d would
    assert up(x).shape == (2, 6, 4, 10, 12)
    up2 = convert(nn.ConvTranspose2d(4, 6, 2, stride=2), 'acs', conv_depth_stride=None)
    assert up2(x).shape == (2, 6, 6, 10, 12)


class Odd2d(nn.Module):

    def forward(self, x):
        return x


def test_unconvertible_modules_raise_naming_the_module():
    bad = nn.Sequential(nn.Conv2d(3, 3, 3), nn.Sequential(nn.Conv2d(3, 3, (1, 3))))
    with pytest.raises(ConversionError, match=r'1\.0'):
        convert(bad, 'acs')
    with pytest.raises(ConversionError, match='block.odd'):
        convert(nn.Sequential(nn.ModuleDict({'block': nn.ModuleDict({'odd': Odd2d()})})), '2.5d')
    with pytest.raises(ConversionError, match='size'):
        convert(nn.Sequential(nn.Upsample(size=(4, 4))), 'acs')
    with pytest.raises(ValueError, match='mode'):
        convert(nn.Conv2d(1, 1, 3), '4d')


def test_conversion_reads_attributes_not_constructor_locals():
    """Converting a Conv2d subclass with its own __init__ signature works (the official
    converter broke when torch renamed Conv2d.__init__'s arguments)."""

    class MyConv(nn.Conv2d):

        def __init__(self, cin, cout):
            super().__init__(cin, cout, kernel_size=3, padding=1)

    conv = MyConv(2, 6)
    acs = convert(conv, 'acs')
    assert isinstance(acs, ACSConv) and torch.equal(acs.weight, conv.weight)


def test_registry_extends_layers_and_modes_without_editing_the_dispatcher():
    from acsdet.converters import (CONV_MODES, LAYER_CONVERTERS, ConversionError, convert,
                                   register_conv_mode, register_converter)

    class Blur2d(nn.Module):  # a 2D layer acsdet does not know

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(1, 1, 3, 3) / 9)

    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), Blur2d())
    with pytest.raises(ConversionError, match='register_converter'):
        convert(net, '2.5d')
    try:

        @register_converter(Blur2d)
        def _blur(m, name, opts):
            return nn.AvgPool3d((1, 3, 3), 1, (0, 1, 1))

        @register_conv_mode('plain3d')
        def _plain(m, name, opts):  # a new mode: every conv a random K^3 Conv3d
            k = m.kernel_size[0]
            return nn.Conv3d(m.in_channels, m.out_channels, k, padding=k // 2)

        out = convert(net, 'plain3d')
        assert isinstance(out[0], nn.Conv3d) and out[0].kernel_size == (3, 3, 3)
        assert isinstance(out[1], nn.AvgPool3d)
        assert out(torch.randn(1, 2, 5, 8, 8)).shape == (1, 4, 5, 8, 8)
        assert isinstance(convert(net, '2.5d')[1], nn.AvgPool3d)
    finally:
        LAYER_CONVERTERS.pop(Blur2d, None)
        CONV_MODES.pop('plain3d', None)


def test_unknown_modes_and_options_name_the_close_ones():
    from acsdet.converters import mode_options
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1))
    with pytest.raises(ValueError, match="conv mode 'asc' is not one of .*did you mean 'acs'"):
        convert(net, 'asc')
    with pytest.raises(ValueError, match=r"'tsm' takes no option 'nfold' .*did you mean 'n_fold'"):
        convert(net, 'tsm', nfold=4)
    with pytest.raises(ValueError, match="'acs' takes no option 'ref_thickness'"):
        convert(net, 'acs', ref_thickness=2.0)  # not silently ignored
    assert [f.name
            for f in fields(mode_options('alignshift'))] == ['n_fold', 'ref_thickness', 'zero_pad']


def test_a_new_mode_is_one_registration_with_its_own_options():
    from acsdet.converters import CONV_MODES, ModeOptions, register_conv_mode

    @dataclass(frozen=True)
    class DilatedOptions(ModeOptions):
        depth_dilation: int = 1

        def check(self, mode):
            if self.depth_dilation < 1:
                raise ValueError(f'{mode}: depth_dilation must be >= 1')

    try:

        @register_conv_mode('dilated3d', options=DilatedOptions, keeps_depth=True)
        def _dilated(m, name, opts):
            k, d = m.kernel_size[0], opts.mode_options.depth_dilation
            return nn.Conv3d(
                m.in_channels,
                m.out_channels,
                k,
                padding=(d * (k // 2), k // 2, k // 2),
                dilation=(d, 1, 1))

        out = convert(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1)), 'dilated3d', depth_dilation=2)
        assert out[0].dilation == (2, 1, 1)
        assert out(torch.randn(1, 2, 6, 8, 8)).shape == (1, 4, 6, 8, 8)
        with pytest.raises(ValueError, match='depth_dilation must be >= 1'):
            convert(nn.Conv2d(2, 4, 3), 'dilated3d', depth_dilation=0)
        with pytest.raises(ValueError, match='keeps depth'):
            convert(nn.Conv2d(2, 4, 3), 'dilated3d', pool_depth=2)
        backbone = MODELS.build(
            dict(
                type='TruncatedDenseNet',
                conv_mode='dilated3d',
                num_slices=3,
                depth_dilation=2,
                growth_rate=4,
                block_config=(1, 1, 1),
                num_init_features=8))
        assert all(c.dilation == (2, 1, 1) for c in backbone.features.modules()
                   if isinstance(c, nn.Conv3d) and c.kernel_size == (3, 3, 3))
    finally:
        CONV_MODES.pop('dilated3d', None)
