"""A3D: asymmetric slice fusion before 2D-pretrained (1, K, K) convolutions.

"Asymmetric 3D Context Fusion for Universal Lesion Detection" (MICCAI 2021). Every channel's D
slices are re-mixed by its own learned D x D matrix along depth, ``y[b, c, k] = sum_d x[b, c, d]
W[d, k, c]`` (the reference's ``einsum('bcdhw,dkc->bckhw')``): each output slice has its own
weights, so the operator is not translation-equivariant along depth, unlike a convolution.
Initialised to the identity plus U(-0.1, 0.1) noise, so the pretrained 2D behaviour is the start.

Placement (the authors' ``nn/models/truncated_densenet3d_a3d.py``): the fusion runs before both
convolutions of every dense layer, the 1 x 1 and the 3 x 3; the stem and the transitions are
plain ``(1, K, K)`` convolutions (``A3DConv(..., fuse=False)``, no fusion parameters).
"""
from typing import Union

import torch
import torch.nn as nn

from .conv2_5d import Conv2_5d
from .conv_args import IntOr3


class SliceFusion(nn.Module):
    """Per-channel D x D slice mixing of ``(N, C, D, H, W)``; parameter ``weight`` ``(D, D, C)``."""

    def __init__(self, channels: int, num_slices: int, init_noise: float = 0.1):
        super().__init__()
        if num_slices < 1:
            raise ValueError(f'num_slices must be >= 1, got {num_slices}')
        self.channels, self.num_slices, self.init_noise = channels, num_slices, init_noise
        self.weight = nn.Parameter(torch.empty(num_slices, num_slices, channels))
        self.reset_parameters()

    def reset_parameters(self, noise: float = None) -> None:
        noise = self.init_noise if noise is None else noise
        eye = torch.eye(self.num_slices).unsqueeze(-1).expand(-1, -1, self.channels)
        with torch.no_grad():
            self.weight.copy_(eye + torch.empty_like(self.weight).uniform_(-noise, noise))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.channels or x.shape[2] != self.num_slices:
            raise ValueError(f'SliceFusion expects (N, {self.channels}, {self.num_slices}, H, W), '
                             f'got {tuple(x.shape)}')
        return torch.einsum('bcdhw,dkc->bckhw', x, self.weight)

    def extra_repr(self) -> str:
        return f'channels={self.channels}, num_slices={self.num_slices}'


class A3DConv(Conv2_5d):
    """Slice fusion of the input followed by a ``(1, K, K)`` convolution whose weight is stored 2D
    (so 2D checkpoints load unchanged; the fusion matrices are ``fusion.weight``).
    Input ``(N, Ci, D, H, W)`` with D = ``num_slices``. ``fuse=False``: no fusion (``fusion`` is
    None), a plain 2.5D convolution, as the authors' stem and transitions."""

    @property
    def depth_radius(self) -> int:
        """No volumetric pass: the fusion matrices act on exactly D slices."""
        if self.fusion is None:
            return 0
        raise ValueError("conv_mode 'a3d' fuses a fixed D x D: it has no volumetric pass "
                         '(run it per key slice)')

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size,
                 num_slices: int,
                 stride: IntOr3 = 1,
                 padding: Union[IntOr3, str] = 0,
                 dilation: IntOr3 = 1,
                 groups: int = 1,
                 bias: bool = True,
                 padding_mode: str = 'zeros',
                 init_noise: float = 0.1,
                 fuse: bool = True,
                 device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype)
        self.fusion = SliceFusion(in_channels, num_slices, init_noise) if fuse else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x if self.fusion is None else self.fusion(x))
