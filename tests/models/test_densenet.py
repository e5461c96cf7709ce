"""The DenseNet's inference route (eval, no autograd) against its training form, in float64."""
import pytest
import torch
import torch.nn as nn

from acsdet.converters import convert
from acsdet.models.backbones.densenet import (DenseLayer, Transition, bn_relu_concat, in_plane_pool,
                                              pointwise_weight)


def _random_stats(module):
    """BatchNorms with statistics and affine parameters far from the identity."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.2, 3)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    return module.double().eval()


def _training_form(module, *inputs, **kw):
    """The module's forward with autograd on: its training-form route (cat, norm, ReLU, conv)."""
    with torch.enable_grad():
        return module(*inputs, **kw).detach()


@pytest.mark.parametrize('mode', ['2d', 'acs', 'tsm'])
def test_a_dense_layer_gives_its_training_forms_output(mode):
    torch.manual_seed(0)
    layer = DenseLayer(12, 4, 2, nn.BatchNorm2d)
    layer = _random_stats(layer if mode == '2d' else convert(layer, mode))
    spatial = (5, 6) if mode == '2d' else (5, 6, 6)
    xs = [torch.randn(1, c, *spatial, dtype=torch.float64) for c in (8, 4)]
    # 'acs' folds norm2 into its 2.5D conv1; 'tsm' shifts before conv1, so norm2 stays apart
    assert (pointwise_weight(layer.conv1) is None) == (mode == 'tsm')
    with torch.no_grad():
        fast = layer(*xs)
    torch.testing.assert_close(fast, _training_form(layer, *xs), rtol=1e-12, atol=1e-12)


def test_a_transition_pools_before_its_convolution_with_the_same_result():
    torch.manual_seed(1)
    trans = _random_stats(convert(Transition(10, 6, nn.BatchNorm2d), 'acs'))
    xs = [torch.randn(1, 6, 3, 8, 8, dtype=torch.float64), torch.randn(1, 4, 3, 8, 8).double()]
    calls = []
    trans.pool.register_forward_hook(lambda m, a, o: calls.append(tuple(a[0].shape)))
    with torch.no_grad():
        fast = trans(*xs)
    assert calls == [(1, 10, 3, 8, 8)]  # pooled the 10 channels, before the convolution
    torch.testing.assert_close(
        fast, _training_form(trans, torch.cat(xs, 1)), rtol=1e-12, atol=1e-12)


def test_the_normalised_concatenation_keeps_channels_last_and_the_dtype():
    norm = _random_stats(nn.BatchNorm3d(7))
    xs = [
        torch.randn(1, c, 4, 5, 6,
                    dtype=torch.float64).contiguous(memory_format=torch.channels_last_3d)
        for c in (3, 4)
    ]
    with torch.no_grad():
        out = bn_relu_concat(xs, norm)
    assert out.is_contiguous(memory_format=torch.channels_last_3d) and out.dtype == torch.float64
    torch.testing.assert_close(out, torch.relu(norm(torch.cat(xs, 1))), rtol=1e-12, atol=1e-12)


def test_only_plain_1x1_convolutions_are_folded():
    assert pointwise_weight(nn.Conv2d(4, 3, 1, bias=False)).shape == (3, 4)
    assert pointwise_weight(nn.Conv2d(4, 3, 1, bias=True)) is None
    assert pointwise_weight(nn.Conv2d(4, 3, 3, padding=1, bias=False)) is None
    assert pointwise_weight(nn.Conv2d(4, 4, 1, groups=2, bias=False)) is None
    assert pointwise_weight(nn.Conv2d(4, 3, 1, stride=2, bias=False)) is None


@pytest.mark.parametrize('kind', ['avg', 'max'])
@pytest.mark.parametrize('kernel,padding', [((1, 2, 2), 0), ((1, 3, 3), (0, 1, 1)), ((2, 2, 2), 0)])
def test_in_plane_pooling_keeps_channels_last_and_pools_as_the_3d_pooling(kind, kernel, padding):
    pool = (
        nn.AvgPool3d(kernel, padding=padding, count_include_pad=False)
        if kind == 'avg' else nn.MaxPool3d(kernel, stride=(1, 2, 2), padding=padding))
    x = torch.randn(2, 5, 4, 7, 6, dtype=torch.float64)
    y = in_plane_pool(pool, x.contiguous(memory_format=torch.channels_last_3d))
    # (avg_pool3d, where a depth kernel makes it the one to run, returns NCDHW)
    assert y.is_contiguous(memory_format=torch.channels_last_3d) == (
        kernel[0] == 1 or kind == 'max')
    torch.testing.assert_close(y, pool(x), rtol=1e-12, atol=1e-12)
    with torch.autocast('cpu', dtype=torch.bfloat16):  # bfloat16 in, bfloat16 out
        out = in_plane_pool(pool, y.bfloat16())  # (the 3D poolings run in float32 there)
        assert out.dtype == (torch.bfloat16 if kernel[0] == 1 else torch.float32)
