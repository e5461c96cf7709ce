"""2.5D convolution: the paper's counterpart of ACS, a ``(1, K, K)`` 3D kernel with a 2D weight."""
from typing import Union

import torch
import torch.nn.functional as F

from .acs_conv import ACSConvTranspose, Conv2dWeightIn3d
from .conv_args import IntOr3, resolve_padding


class Conv2_5d(Conv2dWeightIn3d):
    """``nn.Conv3d`` with a ``(1, K, K)`` kernel whose weight is stored 2D
    ``(Co, Ci/groups, K, K)``.

    Input ``(N, Ci, D, H, W)``. An int ``padding`` p means ``(0, p, p)`` (the kernel has depth 1);
    per-axis paddings, ``'same'`` and ``'valid'`` are used as given.
    """

    #: Slices each side an output depends on: none (a (1, K, K) kernel).
    depth_radius = 0

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
        if isinstance(padding, int):
            padding = (0, padding, padding)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.unsqueeze(2)
        padding = self.padding
        if self.padding_mode != 'zeros':
            pads = resolve_padding(padding, self.kernel_size[1], self.dilation, self.stride)
            if isinstance(padding, str):  # 'same'/'valid' of the (1, K, K) kernel: none along D
                pads = ((0, 0), ) + pads[1:]
            x = F.pad(x, [p for axis in reversed(pads) for p in axis], mode=self.padding_mode)
            padding = 0
        return F.conv3d(x, weight, self.bias, self.stride, padding, self.dilation, self.groups)


class ConvTranspose2_5d(ACSConvTranspose):
    """``nn.ConvTranspose3d`` with a ``(1, K, K)`` kernel and a 2D weight ``(Ci, Co/groups, K, K)``.

    An int ``padding`` p means ``(0, p, p)``; the depth axis has kernel 1.
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
                 device=None,
                 dtype=None):
        if isinstance(padding, int):
            padding = (0, padding, padding)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                         groups, bias, dilation, (out_channels, 0, 0), device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose3d(x, self.weight.unsqueeze(2), self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)
