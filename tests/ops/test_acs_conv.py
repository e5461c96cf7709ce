"""ACSConv and Conv2_5d against dense nn.Conv3d kernels and the official acsconv package."""
import itertools

import pytest
import torch
import torch.nn as nn

from acsdet.ops import ACSConv, Conv2_5d, default_acs_split


def dense_acs_kernel(weight2d, split):
    """The (Co, Ci/g, K, K, K) block-sparse kernel equal to an ACS kernel: each view's 2D kernel
    on its plane through the centre (axial: H, W; coronal: D, W; sagittal: D, H)."""
    co, ci, k, _ = weight2d.shape
    c = k // 2
    dense = weight2d.new_zeros(co, ci, k, k, k)
    a, cor, _ = split
    dense[:a, :, c, :, :] = weight2d[:a]
    dense[a:a + cor, :, :, c, :] = weight2d[a:a + cor]
    dense[a + cor:, :, :, :, c] = weight2d[a + cor:]
    return dense


def dense_twin(acs):
    conv = nn.Conv3d(acs.in_channels, acs.out_channels, acs.kernel_size, acs.stride, acs.padding,
                     acs.dilation, acs.groups, acs.bias is not None, acs.padding_mode)
    with torch.no_grad():
        conv.weight.copy_(dense_acs_kernel(acs.weight, acs.acs_kernel_split))
        if acs.bias is not None:
            conv.bias.copy_(acs.bias)
    return conv


def check_against_dense(acs, x):
    dense = dense_twin(acs)
    x1 = x.clone().requires_grad_()
    x2 = x.clone().requires_grad_()
    y1, y2 = acs(x1), dense(x2)
    assert y1.shape == y2.shape
    torch.testing.assert_close(y1, y2, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(y1)
    y1.backward(g)
    y2.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-4)
    # the dense kernel's gradient restricted to each view's plane is the ACS weight gradient
    gw = dense_acs_kernel(torch.ones_like(acs.weight), acs.acs_kernel_split) * dense.weight.grad
    a, c, _ = acs.acs_kernel_split
    k = acs.kernel_size[0] // 2
    expected = torch.cat([gw[:a, :, k], gw[a:a + c, :, :, k], gw[a + c:, :, :, :, k]])
    torch.testing.assert_close(acs.weight.grad, expected, rtol=1e-4, atol=1e-4)
    if acs.bias is not None:
        torch.testing.assert_close(acs.bias.grad, dense.bias.grad, rtol=1e-4, atol=1e-4)


GRID = list(
    itertools.product(
        [1, 3, 5],  # kernel size
        [1, 2, (1, 2, 2), (2, 1, 3)],  # stride
        [0, 1, 2, (0, 1, 2)],  # padding
        [1, 2],  # dilation
    ))


def too_small(x, k, padding, dilation) -> bool:
    """Whether ``nn.Conv3d`` with these arguments has no output for ``x``."""
    pads = (padding, ) * 3 if isinstance(padding, int) else padding
    return any(n + 2 * p - dilation * (k - 1) < 1 for n, p in zip(x.shape[2:], pads))


@pytest.mark.parametrize('k,stride,padding,dilation', GRID)
def test_matches_dense_conv3d(k, stride, padding, dilation):
    acs = ACSConv(4, 7, k, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(2, 4, 7, 9, 8)
    if too_small(x, k, padding, dilation):
        with pytest.raises(ValueError, match='too small'):  # nn.Conv3d raises too
            acs(x)
    else:
        check_against_dense(acs, x)


@pytest.mark.parametrize('padding_mode', ['zeros', 'reflect', 'replicate', 'circular'])
@pytest.mark.parametrize('padding', [1, (1, 2, 0), 'same'])
def test_padding_modes(padding_mode, padding):
    acs = ACSConv(3, 8, 3, padding=padding, padding_mode=padding_mode, dilation=(1, 2, 1))
    check_against_dense(acs, torch.randn(1, 3, 6, 7, 8))


@pytest.mark.parametrize('k,padding', [(2, 'same'), (4, 'same'), (2, 0), (2, 1), (4, 2),
                                       (3, 'valid')])
def test_even_kernels_and_string_padding(k, padding):
    acs = ACSConv(3, 5, k, padding=padding)
    check_against_dense(acs, torch.randn(1, 3, 6, 7, 8))


@pytest.mark.parametrize('cin,cout,groups', [(6, 6, 6), (6, 12, 6), (8, 12, 4), (6, 9, 3),
                                             (4, 10, 2)])
@pytest.mark.parametrize('stride', [1, 2])
def test_groups(cin, cout, groups, stride):
    acs = ACSConv(cin, cout, 3, stride=stride, padding=1, groups=groups)
    check_against_dense(acs, torch.randn(2, cin, 5, 6, 7))


@pytest.mark.parametrize('split', [(5, 0, 0), (0, 5, 0), (0, 0, 5), (1, 2, 2)])
def test_custom_split(split):
    acs = ACSConv(3, 5, 3, padding=1, acs_kernel_split=split, bias=False)
    check_against_dense(acs, torch.randn(1, 3, 4, 5, 6))


def test_default_split_is_official():
    assert default_acs_split(9) == (3, 3, 3)
    assert default_acs_split(10) == (4, 3, 3)
    assert default_acs_split(11) == (4, 4, 3)
    assert default_acs_split(1) == (1, 0, 0)
    assert default_acs_split(2) == (1, 1, 0)


def test_weight_is_stored_2d_and_loads_a_conv2d_state_dict():
    conv2d = nn.Conv2d(4, 6, 3, padding=1)
    acs = ACSConv(4, 6, 3, padding=1)
    assert acs.weight.shape == (6, 4, 3, 3)
    acs.load_state_dict(conv2d.state_dict())
    assert torch.equal(acs.weight, conv2d.weight) and torch.equal(acs.bias, conv2d.bias)
    assert sum(p.numel() for p in acs.parameters()) == sum(p.numel() for p in conv2d.parameters())


def test_rejects_non_square_kernels_and_bad_arguments():
    with pytest.raises(ValueError, match='square'):
        ACSConv(3, 3, (3, 5))
    with pytest.raises(ValueError, match='square'):
        ACSConv(3, 3, (3, 3, 1))
    with pytest.raises(ValueError, match='divisible by groups'):
        ACSConv(3, 4, 3, groups=3)
    with pytest.raises(ValueError, match='acs_kernel_split'):
        ACSConv(3, 4, 3, acs_kernel_split=(1, 1, 1))
    with pytest.raises(ValueError, match='strided'):
        ACSConv(3, 4, 3, stride=2, padding='same')
    with pytest.raises(ValueError, match='padding_mode'):
        ACSConv(3, 4, 3, padding_mode='mirror')
    with pytest.raises(ValueError, match=r'\(N, C, D, H, W\)'):
        ACSConv(3, 4, 3)(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('groups', [1, 'depthwise'])
def test_same_outputs_as_official_acsconv(stride, groups):
    """Where the official operator is correct (odd K, 'same'-style padding), outputs are
    identical."""
    import acsconv.operators as official_ops  # a test dependency (tools/setup_env.sh)
    cin = 6
    g = cin if groups == 'depthwise' else 1
    ours = ACSConv(cin, cin, 3, stride=stride, padding=1, groups=g)
    theirs = official_ops.ACSConv(cin, cin, 3, stride=stride, padding=1, groups=g)
    theirs.load_state_dict(ours.state_dict())  # same 2D weight layout, same split
    assert theirs.acs_kernel_split == ours.acs_kernel_split
    x = torch.randn(2, cin, 8, 8, 8)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_official_acsconv_is_wrong_with_dilation_where_ours_is_right():
    import acsconv.operators as official_ops  # a test dependency (tools/setup_env.sh)
    ours = ACSConv(3, 6, 3, padding=0, dilation=2)
    theirs = official_ops.ACSConv(3, 6, 3, padding=0, dilation=2)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 9, 9, 9)
    assert ours(x).shape == dense_twin(ours)(x).shape
    torch.testing.assert_close(ours(x), dense_twin(ours)(x), rtol=1e-4, atol=1e-4)
    out_theirs = theirs(x)
    assert out_theirs.shape != ours(x).shape or not torch.allclose(out_theirs, ours(x), atol=1e-3)


@pytest.mark.parametrize('padding', [1, (0, 1, 1), 'same'])
@pytest.mark.parametrize('padding_mode', ['zeros', 'reflect'])
def test_conv2_5d_matches_conv3d_1kk(padding, padding_mode):
    m = Conv2_5d(
        4,
        6,
        3,
        padding=padding,
        stride=(1, 2, 1) if padding != 'same' else 1,
        padding_mode=padding_mode)
    pad3d = (0, 1, 1) if padding == 1 else padding
    ref = nn.Conv3d(4, 6, (1, 3, 3), stride=m.stride, padding=pad3d, padding_mode=padding_mode)
    with torch.no_grad():
        ref.weight.copy_(m.weight.unsqueeze(2))
        ref.bias.copy_(m.bias)
    x = torch.randn(2, 4, 5, 8, 9)
    torch.testing.assert_close(m(x), ref(x), rtol=1e-5, atol=1e-5)
    assert m.weight.shape == (6, 4, 3, 3)


@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('padding', [1, 0])
def test_chunked_input_gradient_path(monkeypatch, batch, padding):
    """Large inputs accumulate the views' input gradients in chunks; force that path here."""
    from acsdet.ops import acs_function as acs_conv
    monkeypatch.setattr(acs_conv, '_CHUNK_BYTES', 0)
    acs = ACSConv(5, 7, 3, padding=padding, stride=(1, 2, 1))
    check_against_dense(acs, torch.randn(batch, 5, 6, 7, 8))


@pytest.mark.parametrize('chunk_bytes', [None, 0])
@pytest.mark.parametrize('padding', [1, 0])
def test_channels_last_3d_input_keeps_its_layout_and_values(monkeypatch, chunk_bytes, padding):
    """An NDHWC input gives an NDHWC output and input gradient (no layout conversions in the
    next layer), with the values of the contiguous layout."""
    from acsdet.ops import acs_function as acs_conv
    if chunk_bytes is not None:
        monkeypatch.setattr(acs_conv, '_CHUNK_BYTES', chunk_bytes)
    torch.manual_seed(0)
    acs = ACSConv(6, 7, 3, padding=padding, stride=(1, 2, 1))
    x = torch.randn(2, 6, 5, 8, 9)
    xc = x.clone().requires_grad_()
    xl = x.contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    yc, yl = acs(xc), acs(xl)
    assert yc.is_contiguous() and not yl.is_contiguous()
    assert yl.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(yl, yc, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(yc)
    yc.backward(g)
    gw = acs.weight.grad.clone()
    acs.weight.grad = None
    yl.backward(g.contiguous(memory_format=torch.channels_last_3d))
    assert xl.grad.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(xl.grad, xc.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(acs.weight.grad, gw, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('k,stride,padding', [(7, (1, 2, 2), 3), (3, 1, 1),
                                              (5, (1, 1, 2), (2, 0, 1))])
def test_one_channel_input_runs_depth_unfolded_without_autograd(k, stride, padding):
    """The stem's grey input, no autograd: one 2D convolution of the depth-unfolded input with
    the merged kernel, the dense Conv3d's result in float64, channels-last-3d out."""
    from acsdet.ops.acs_function import acs_merged_weight
    acs = ACSConv(1, 10, k, stride=stride, padding=padding, bias=True).double()
    torch.testing.assert_close(
        acs_merged_weight(acs.weight, acs.acs_kernel_split),
        dense_acs_kernel(acs.weight, acs.acs_kernel_split),
        rtol=0,
        atol=0)
    x = torch.randn(2, 1, 6, 13, 12, dtype=torch.float64)
    views = acs(x)  # autograd on: the three views
    with torch.no_grad():
        assert acs._depth_unfolded(x)
        y = acs(x)
        dense = dense_twin(acs).double()(x)
    assert y.is_contiguous(memory_format=torch.channels_last_3d) and y.shape == dense.shape
    torch.testing.assert_close(y, dense, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(views, dense, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # two channels, or depth padding other than K // 2: the views
        assert not ACSConv(2, 4, k, padding=padding)._depth_unfolded(x.repeat(1, 2, 1, 1, 1))
        assert not ACSConv(1, 4, k, padding=0)._depth_unfolded(x)
