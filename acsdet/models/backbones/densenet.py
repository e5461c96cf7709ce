"""A 2D DenseNet with torchvision's module names, so torchvision state dicts load as they are.

Only what the truncated backbone needs: ``features.conv0 .. denseblockN``; dense layers can run
their bottleneck under gradient checkpointing (``with_cp``) in 2D or after 3D conversion, since
a layer only concatenates its inputs and calls its sub-modules. Dense blocks and layers take an
optional per-sample ``thickness`` and hand it to the convolutions that want it (those with
``takes_thickness``, AlignShift's), as an argument: no module keeps per-batch state.
"""
from collections import OrderedDict
from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp


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
        if self.with_cp and any(t.requires_grad for t in inputs):
            out = cp.checkpoint(self.bottleneck, thickness, *inputs, use_reentrant=False)
        else:
            out = self.bottleneck(thickness, *inputs)
        return _conv(self.conv2, self.relu2(self.norm2(out)), thickness)


def _conv(conv: nn.Module, x: torch.Tensor, thickness: Optional[torch.Tensor]) -> torch.Tensor:
    """``conv(x)``, with the thickness for a convolution that takes it."""
    return conv(x, thickness) if getattr(conv, 'takes_thickness', False) else conv(x)


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

    def __init__(self, in_channels: int, out_channels: int, norm):
        super().__init__(
            OrderedDict(
                norm=norm(in_channels),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
                pool=nn.AvgPool2d(2, 2)))


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
