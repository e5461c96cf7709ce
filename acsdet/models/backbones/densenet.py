"""A 2D DenseNet with torchvision's module names, so torchvision state dicts load as they are.

Only what the truncated backbone needs: ``features.conv0 .. denseblockN``; dense layers can run
their bottleneck under gradient checkpointing (``with_cp``) in 2D or after 3D conversion, since
a layer only concatenates its inputs and calls its sub-modules. Dense blocks and layers take an
optional per-sample ``thickness`` and hand it to the convolutions that want it (those with
``takes_thickness``, AlignShift's), as an argument: no module keeps per-batch state.

Inference (eval mode, no autograd) takes a leaner route to the same output: a layer's inputs are
normalised straight into one buffer (eval BatchNorm as a per-channel scale and shift, ReLU in
place), with no concatenation copy first; a plain 1 x 1 ``conv1`` carries ``norm2`` folded into
its weight and bias; a transition averages before its 1 x 1 convolution (a pointwise linear map
commutes with average pooling), a quarter of the work. The memory-bound work between the
convolutions (copies, BatchNorm, ReLU) was half the dense blocks' time on a CPU.
"""
from collections import OrderedDict
from functools import reduce
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch.nn.modules.batchnorm import _BatchNorm

from ...ops.conv2_5d import Conv2_5d

#: Average poolings: linear maps that commute with a 1 x 1 convolution without bias.
AVERAGE_POOLS = (nn.AvgPool2d, nn.AvgPool3d)


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 (bn_size * growth) - BN-ReLU-Conv3x3 (growth) on the concatenated inputs."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, norm: Callable[[int],
                                                                                        nn.Module]):
        super().__init__()
        self.norm1 = norm(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = norm(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.with_cp = False

    def bottleneck(self, thickness: Optional[torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        return _conv(self.conv1, self.relu1(self.norm1(torch.cat(inputs, 1))), thickness)

    def forward(self,
                *inputs: torch.Tensor,
                thickness: Optional[torch.Tensor] = None) -> torch.Tensor:
        if _inference(self, self.norm1, self.norm2):
            return self.forward_inference(*inputs, thickness=thickness)
        if self.with_cp and any(t.requires_grad for t in inputs):
            out = cp.checkpoint(self.bottleneck, thickness, *inputs, use_reentrant=False)
        else:
            out = self.bottleneck(thickness, *inputs)
        return _conv(self.conv2, self.relu2(self.norm2(out)), thickness)

    def forward_inference(self,
                          *inputs: torch.Tensor,
                          thickness: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`forward` with eval BatchNorm and no autograd, without its copies: the inputs
        normalised into one buffer, ``norm2`` folded into a plain 1 x 1 ``conv1``."""
        x = bn_relu_concat(inputs, self.norm1)
        weight = pointwise_weight(self.conv1)
        if weight is None:
            x = self.relu2(self.norm2(_conv(self.conv1, x, thickness)))
        else:
            scale, shift = eval_affine(self.norm2)
            x = pointwise_conv(x, weight * scale[:, None], shift).relu_()
        return _conv(self.conv2, x, thickness)


def _conv(conv: nn.Module, x: torch.Tensor, thickness: Optional[torch.Tensor]) -> torch.Tensor:
    """``conv(x)``, with the thickness for a convolution that takes it."""
    return conv(x, thickness) if getattr(conv, 'takes_thickness', False) else conv(x)


def _inference(module: nn.Module, *norms: nn.Module) -> bool:
    """Whether ``module`` may take its inference route: eval mode, autograd off, and its norms
    BatchNorms with running statistics (a scale and a shift per channel)."""
    return (not module.training and not torch.is_grad_enabled()
            and all(isinstance(n, _BatchNorm) and n.running_var is not None for n in norms))


def eval_affine(norm: _BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """An eval BatchNorm as ``x * scale + shift``: ``(scale (C,), shift (C,))``, in its
    statistics' dtype (float32 at least)."""
    dtype = torch.promote_types(norm.running_var.dtype, torch.float32)
    scale = torch.rsqrt(norm.running_var.to(dtype) + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.to(dtype)
    shift = -norm.running_mean.to(dtype) * scale
    if norm.bias is not None:
        shift = shift + norm.bias.to(dtype)
    return scale, shift


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """The channels-last format a 4D / 5D tensor is stored in, else contiguous."""
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    if fmt is not None and not x.is_contiguous() and x.is_contiguous(memory_format=fmt):
        return fmt
    return torch.contiguous_format


def bn_relu_concat(inputs: Sequence[torch.Tensor], norm: _BatchNorm) -> torch.Tensor:
    """``relu(norm(torch.cat(inputs, 1)))`` of an eval BatchNorm, each input normalised straight
    into its channels of one new tensor (in the first input's layout and the inputs' dtype): one
    pass over the inputs where the concatenation, the norm and the ReLU make three."""
    first = inputs[0]
    dtype = reduce(torch.promote_types, (t.dtype for t in inputs))
    channels = sum(t.shape[1] for t in inputs)
    out = torch.empty(
        (first.shape[0], channels) + first.shape[2:],
        dtype=dtype,
        device=first.device,
        memory_format=memory_format_of(first))
    scale, shift = (v.to(dtype) for v in eval_affine(norm))  # bfloat16 inputs: bfloat16 math
    per_channel = (-1, ) + (1, ) * (first.dim() - 2)
    lo = 0
    for t in inputs:
        hi = lo + t.shape[1]
        torch.addcmul(
            shift[lo:hi].view(per_channel), t, scale[lo:hi].view(per_channel), out=out[:, lo:hi])
        lo = hi
    return out.relu_()


def pointwise_weight(conv: nn.Module) -> Optional[torch.Tensor]:
    """``(Co, Ci)``: the matrix of a plain 1 x 1 convolution (``nn.Conv2d``, ``nn.Conv3d`` or
    acsdet's 2.5D one; stride 1, no padding, no groups), which may be folded with a norm or
    moved past a pooling; None for any other (a shift along depth, a bias, another kernel)."""
    if type(conv) not in (nn.Conv2d, nn.Conv3d, Conv2_5d) or conv.bias is not None:
        return None
    if (conv.groups != 1 or any(k != 1 for k in conv.kernel_size)
            or any(s != 1 for s in conv.stride) or isinstance(conv.padding, str)
            or any(conv.padding)):
        return None
    return conv.weight.reshape(conv.weight.shape[0], -1)


def pointwise_conv(x: torch.Tensor,
                   weight: torch.Tensor,
                   bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The 1 x 1 convolution of ``x`` ``(N, Ci, ...)`` with ``weight`` ``(Co, Ci)`` and ``bias``
    ``(Co,)``, in ``x``'s layout (under autocast in its dtype)."""
    conv = F.conv3d if x.dim() == 5 else F.conv2d
    out = conv(x, weight.view(weight.shape + (1, ) * (x.dim() - 2)), bias)
    return out.contiguous(memory_format=memory_format_of(x))  # small sizes skip oneDNN


class DenseBlock(nn.ModuleDict):
    """``denselayer1 .. denselayerN``; returns the concatenation of its input and every layer."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int, norm):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f'denselayer{i + 1}',
                            DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, norm))

    def forward(self, x: torch.Tensor, thickness: Optional[torch.Tensor] = None) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(*features, thickness=thickness))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1-AvgPool2x2 of its input, or of the concatenation of its inputs."""

    def __init__(self, in_channels: int, out_channels: int, norm):
        super().__init__(
            OrderedDict(
                norm=norm(in_channels),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
                pool=nn.AvgPool2d(2, 2)))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if _inference(self, self.norm):
            x = bn_relu_concat(inputs, self.norm)
            weight = pointwise_weight(self.conv)
            if weight is not None and isinstance(self.pool, AVERAGE_POOLS):
                return pointwise_conv(in_plane_pool(self.pool, x), weight)  # a quarter of the work
            return in_plane_pool(self.pool, self.conv(x))
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, 1)
        return super().forward(x)


def in_plane_pool(pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``pool(x)``; an in-plane ``AvgPool3d`` / ``MaxPool3d`` (depth kernel 1) of a
    channels-last-3d ``x`` as a 2D pooling of its slices. oneDNN has no such 3D average pooling
    (``avg_pool3d`` converts the layout, on a CPU 20x slower, and returns NCDHW), and bfloat16
    autocast runs ``max_pool3d`` in float32 (a float32 stem output makes the first dense block's
    concatenations float32) at half the speed of the 2D one; the result is the same."""
    kinds = (nn.AvgPool3d, nn.MaxPool3d)
    if (not isinstance(pool, kinds) or memory_format_of(x) != torch.channels_last_3d
            or getattr(pool, 'return_indices', False)):
        return pool(x)
    k, s, p = (
        tuple(v) if isinstance(v, (tuple, list)) else (v, ) * 3
        for v in (pool.kernel_size, pool.stride or pool.kernel_size, pool.padding))
    if k[0] != 1 or s[0] != 1 or p[0] != 0:
        return pool(x)
    n, d = x.shape[0], x.shape[2]
    slices = x.transpose(1, 2).flatten(0, 1)  # (N * D, C, H, W) channels-last: a view
    if isinstance(pool, nn.AvgPool3d):
        y = F.avg_pool2d(slices, k[1:], s[1:], p[1:], pool.ceil_mode, pool.count_include_pad,
                         pool.divisor_override)
    else:
        dil = pool.dilation if isinstance(pool.dilation, (tuple, list)) else (pool.dilation, ) * 3
        y = F.max_pool2d(slices, k[1:], s[1:], p[1:], tuple(dil[1:]), pool.ceil_mode)
    return y.unflatten(0, (n, d)).transpose(1, 2)


def densenet_features(in_channels: int = 3,
                      growth_rate: int = 32,
                      block_config: Sequence[int] = (6, 12, 24),
                      num_init_features: int = 64,
                      bn_size: int = 4,
                      norm: Callable[[int], nn.Module] = nn.BatchNorm2d) -> nn.Sequential:
    """``features`` of a 2D DenseNet (DenseNet-121 up to ``len(block_config)`` blocks), named as in
    torchvision: conv0, norm0, relu0, pool0, denseblock1, transition1, denseblock2, ..."""
    layers = OrderedDict(
        conv0=nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False),
        norm0=norm(num_init_features),
        relu0=nn.ReLU(inplace=True),
        pool0=nn.MaxPool2d(3, stride=2, padding=1))
    c_in = num_init_features
    outs = dense_block_channels(growth_rate, block_config, num_init_features)
    for i, (n, c) in enumerate(zip(block_config, outs)):
        layers[f'denseblock{i + 1}'] = DenseBlock(n, c_in, growth_rate, bn_size, norm)
        if i != len(block_config) - 1:
            layers[f'transition{i + 1}'] = Transition(c, c // 2, norm)
        c_in = c // 2
    return nn.Sequential(layers)


def dense_block_channels(growth_rate: int = 32,
                         block_config: Sequence[int] = (6, 12, 24),
                         num_init_features: int = 64) -> Tuple[int, ...]:
    """Output channels of each dense block (each transition halves them for the next block)."""
    channels, c = [], num_init_features
    for n in block_config:
        c += n * growth_rate
        channels.append(c)
        c //= 2
    return tuple(channels)
