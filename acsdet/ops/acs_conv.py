"""ACS convolution: a 2D kernel split by output channel over the axial, coronal and sagittal views.

"Reinventing 2D Convolutions for 3D Images" (Yang et al., IEEE JBHI). A 2D weight
``(Co, Ci/g, K, K)`` is split by output channel into ``(a, c, s)`` parts; on an input
``(N, Ci, D, H, W)`` part one is a 3D convolution with kernel ``(1, K, K)`` (axial: the 2D axes
map to H, W), part two ``(K, 1, K)`` (coronal: D, W) and part three ``(K, K, 1)`` (sagittal:
D, H). The outputs are concatenated on
channels and the bias is added once. The split and the view order are those of the official
``acsconv`` package, so weights and outputs are interchangeable with it.

Each view is exactly the dense ``nn.Conv3d`` with a ``(K, K, K)`` kernel that is zero except on the
view's plane through the kernel centre (index ``K // 2`` of the collapsed axis), for every stride,
padding (ints, per axis, ``'same'``, ``'valid'``), padding mode, dilation and grouping, and the
output shape is always that of ``nn.Conv3d`` with the same arguments.
"""
import math
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .acs_function import acs_conv3d, depth_unfolded_acs_conv3d
from .conv_args import (PADDING_MODES, IntOr3, default_acs_split, resolve_acs_split,
                        resolve_padding, square_kernel_size, triple)

__all__ = [
    'ACSConv', 'ACSConvTranspose', 'Conv2dWeightIn3d', 'acs_conv3d', 'default_acs_split', 'IntOr3'
]


class Conv2dWeightIn3d(nn.Module):
    """Shared constructor of the 3D convolutions that keep a 2D weight ``(Co, Ci/groups, K, K)``.

    Same arguments as ``nn.Conv3d``; the 2D weight layout lets 2D checkpoints load unchanged.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size,
                 stride: IntOr3 = 1,
                 padding: Union[IntOr3, str] = 0,
                 dilation: IntOr3 = 1,
                 groups: int = 1,
                 bias: bool = True,
                 padding_mode: str = 'zeros',
                 device=None,
                 dtype=None):
        super().__init__()
        name = type(self).__name__
        k = square_kernel_size(kernel_size, name)
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f'{name}: in_channels ({in_channels}) and out_channels ({out_channels}) '
                f'must be divisible by groups ({groups})')
        if padding_mode not in PADDING_MODES:
            raise ValueError(f'{name}: padding_mode must be one of {PADDING_MODES}, '
                             f'got {padding_mode!r}')
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = (k, k, k)
        self.stride, self.dilation = triple(stride, 'stride'), triple(dilation, 'dilation')
        self.padding = padding if isinstance(padding, str) else triple(padding, 'padding')
        resolve_padding(self.padding, k, self.dilation, self.stride)  # validate now, not at forward
        self.padding_mode = padding_mode
        factory = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, k, k, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The initialisation of ``nn.Conv2d`` (fan-in of the 2D kernel)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
             f'stride={self.stride}, padding={self.padding}')
        if self.dilation != (1, 1, 1):
            s += f', dilation={self.dilation}'
        if self.groups != 1:
            s += f', groups={self.groups}'
        if self.bias is None:
            s += ', bias=False'
        if self.padding_mode != 'zeros':
            s += f', padding_mode={self.padding_mode}'
        return s


class ACSConv(Conv2dWeightIn3d):
    """ACS convolution with the constructor of ``nn.Conv3d`` plus ``acs_kernel_split``.

    Input ``(N, Ci, D, H, W)`` -> output ``(N, Co, D', H', W')``, as ``nn.Conv3d(..., K)``
    would give.
    ``acs_kernel_split``: output channels of the (axial, coronal, sagittal) views; default the
    official near-equal split.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size,
                 stride: IntOr3 = 1,
                 padding: Union[IntOr3, str] = 0,
                 dilation: IntOr3 = 1,
                 groups: int = 1,
                 bias: bool = True,
                 padding_mode: str = 'zeros',
                 acs_kernel_split: Optional[Sequence[int]] = None,
                 device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype)
        self.acs_kernel_split = resolve_acs_split(acs_kernel_split, out_channels)

    @property
    def depth_radius(self) -> int:
        """Slices each side an output depends on (the coronal and sagittal kernels' depth)."""
        return self.dilation[0] * (self.kernel_size[0] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._depth_unfolded(x):
            return depth_unfolded_acs_conv3d(x, self.weight, self.bias, self.stride, self.padding,
                                             self.acs_kernel_split)
        return acs_conv3d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                          self.groups, self.acs_kernel_split, self.padding_mode)

    def _depth_unfolded(self, x: torch.Tensor) -> bool:
        """Whether to run as :func:`depth_unfolded_acs_conv3d`: a one-channel input (the stem's
        grey CT) without autograd (training keeps the views' memory-lean backward), zero
        padding ``K // 2`` along depth, depth stride 1, no dilation, no groups."""
        k = self.kernel_size[0]
        return (self.in_channels == 1 and x.dim() == 5 and not torch.is_grad_enabled()
                and self.groups == 1 and self.padding_mode == 'zeros'
                and not isinstance(self.padding, str) and self.padding[0] == k // 2
                and self.stride[0] == 1 and self.dilation == (1, 1, 1) and k % 2 == 1)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', acs_kernel_split={self.acs_kernel_split}'


def _place_along(y: torch.Tensor, dim: int, shift: int, length: int) -> torch.Tensor:
    """Shift ``y`` by ``shift`` along ``dim`` into a zero tensor of ``length`` (crops if needed)."""
    pad = [0] * (2 * (y.dim() - dim))
    pad[-2], pad[-1] = shift, length - shift - y.shape[dim]
    return F.pad(y, pad)


class ACSConvTranspose(Conv2dWeightIn3d):
    """Transposed ACS convolution: the 2D weight ``(Ci, Co/groups, K, K)`` split by output channel.

    Each view equals ``nn.ConvTranspose3d`` with the ``(K, K, K)`` kernel that is zero except on the
    view's plane through the centre; input ``(N, Ci, D, H, W)`` -> the shape ``nn.ConvTranspose3d``
    gives. Padding modes other than zeros are not defined for transposed convolutions.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size,
                 stride: IntOr3 = 1,
                 padding: IntOr3 = 0,
                 output_padding: IntOr3 = 0,
                 groups: int = 1,
                 bias: bool = True,
                 dilation: IntOr3 = 1,
                 acs_kernel_split: Optional[Sequence[int]] = None,
                 device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, 'zeros', device, dtype)
        if isinstance(self.padding, str):
            raise ValueError('ACSConvTranspose needs int padding')
        k = self.kernel_size[0]
        # transposed layout (Ci, Co/groups, K, K), re-initialised like nn.ConvTranspose2d
        self.weight = nn.Parameter(self.weight.new_empty(in_channels, out_channels // groups, k, k))
        self.reset_parameters()
        self.output_padding = triple(output_padding, 'output_padding')
        self.acs_kernel_split = resolve_acs_split(acs_kernel_split, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0]
        c = k // 2
        size = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, op in zip(
            x.shape[2:], self.stride, self.padding, self.dilation, self.output_padding)]
        outs, lo = [], 0
        for axis, part in enumerate(self.acs_kernel_split):
            hi = lo + part
            if part:
                if self.groups == 1:
                    w, xin, g = self.weight[:, lo:hi], x, 1
                else:  # depthwise-style grouped transposed conv: whole groups only
                    per = self.out_channels // self.groups
                    if lo % per or hi % per:
                        raise ValueError('grouped ACSConvTranspose needs the split to align with '
                                         'groups')
                    g0, g1 = lo // per, hi // per
                    cin = self.in_channels // self.groups
                    w, xin, g = self.weight[g0 * cin:g1 * cin], x[:, g0 * cin:g1 * cin], g1 - g0
                pad = list(self.padding)
                pad[axis] = 0
                opad = list(self.output_padding)
                opad[axis] = 0
                y = F.conv_transpose3d(xin, w.unsqueeze(2 + axis), None, self.stride, tuple(pad),
                                       tuple(opad), g, self.dilation)
                y = _place_along(y, 2 + axis, c * self.dilation[axis] - self.padding[axis],
                                 size[axis])
                outs.append(y)
            lo = hi
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        return out if self.bias is None else out + self.bias.to(out.dtype).view(1, -1, 1, 1, 1)
