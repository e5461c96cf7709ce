"""Mean-ACS and Soft-ACS: every output channel sees all three views with the same 2D kernel.

The ACS paper's two variants (Yang et al., IEEE JBHI, Table III; appendix Table A1). For a 2D
weight ``W`` ``(Co, Ci/g, K, K)`` and an input ``(N, Ci, D, H, W)``, each output channel ``o``
convolves the whole input with ``W[o]`` on the axial plane (kernel ``(1, K, K)``), the coronal
plane (``(K, 1, K)``) and the sagittal plane (``(K, K, 1)``), as ACS's views do (the same
placement at index ``K // 2`` of the collapsed axis), giving ``f_a``, ``f_c``, ``f_s``:

- Mean-ACS returns ``(f_a + f_c + f_s) / 3``;
- Soft-ACS returns ``sum_v softmax(soft_w_core[o])_v * f_v``, with a learnt ``soft_w_core``
  ``(Co, 3)`` (the official ``acsconv`` package's name, so state dicts interchange).

The bias is added once. Every view is three times the output channels of an ACS view, hence the
paper's 3x time and space.

Computation: by linearity the weighted sum of the three views is one ``conv3d`` with the
``(K, K, K)`` kernel that holds ``w_v[o] * W[o]`` on each view's plane (summed where the planes
cross). ``benchmarks/bench_acs_conv.py`` measured that kernel against three planar convolutions
on this project's CPU (forward + backward): the single dense convolution is 1.5-1.6x faster and
holds a third less memory, so it is the one used (``method='dense'``; ``'planar'`` is kept for
the comparison; docs/backbones.md has the table). Both are exact for every
stride, padding (ints, per axis, ``'same'``, ``'valid'``), padding mode, dilation and grouping:
the padding is applied explicitly, as ``nn.Conv3d`` applies it.

**Initialisation of soft_w_core.** The official operator draws it from ``torch.rand`` (with a
TODO). acsdet starts it at zeros: the softmax is then uniform, so a freshly converted network is
exactly Mean-ACS, deterministic and independent of the seed, and learning moves each channel
towards the views that help it.
"""
from typing import Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .acs_conv import Conv2dWeightIn3d
from .acs_function import acs_conv3d
from .conv_args import (PADDING_MODES, IntOr3, conv_output_sizes, resolve_padding,
                        square_kernel_size, triple)

__all__ = ['MeanACSConv', 'SoftACSConv', 'view_kernel', 'soft_acs_conv3d']

METHODS = ('dense', 'planar')


def view_kernel(weight: torch.Tensor, view_weights: torch.Tensor) -> torch.Tensor:
    """The dense ``(Co, Ci/g, K, K, K)`` kernel of the three views of a 2D ``weight``
    ``(Co, Ci/g, K, K)``, view ``v`` of output channel ``o`` weighted by ``view_weights[o, v]``
    (``(Co, 3)``: axial, coronal, sagittal). Differentiable in both."""
    co, ci, k, _ = weight.shape
    c = k // 2
    a, cor, s = (view_weights[:, v].to(weight.dtype).view(co, 1, 1, 1) * weight for v in range(3))
    kernel = weight.new_zeros(co, ci, k, k, k)
    kernel = kernel.index_add(2, torch.tensor([c], device=weight.device), a.unsqueeze(2))
    kernel = kernel.index_add(3, torch.tensor([c], device=weight.device), cor.unsqueeze(3))
    return kernel.index_add(4, torch.tensor([c], device=weight.device), s.unsqueeze(4))


def soft_acs_conv3d(x: torch.Tensor,
                    weight: torch.Tensor,
                    view_weights: torch.Tensor,
                    bias: Optional[torch.Tensor] = None,
                    stride: IntOr3 = 1,
                    padding: Union[IntOr3, str] = 0,
                    dilation: IntOr3 = 1,
                    groups: int = 1,
                    padding_mode: str = 'zeros',
                    method: str = 'dense') -> torch.Tensor:
    """``sum_v view_weights[:, v] * f_v`` plus ``bias``: ``x`` ``(N, Ci, D, H, W)`` ->
    ``(N, Co, D', H', W')``, the shape ``nn.Conv3d`` with a ``(K, K, K)`` kernel gives."""
    if x.dim() != 5:
        raise ValueError(f'Mean/Soft-ACS convolution expects (N, C, D, H, W) input, got shape '
                         f'{tuple(x.shape)}')
    if method not in METHODS:
        raise ValueError(f'method must be one of {METHODS}, got {method!r}')
    if padding_mode not in PADDING_MODES:
        raise ValueError(f'padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}')
    co = weight.shape[0]
    if method == 'planar':  # the three ACS views, each over every output channel
        views = [
            acs_conv3d(x, weight, None, stride, padding, dilation, groups,
                       [co if a == v else 0 for a in range(3)], padding_mode) for v in range(3)
        ]
        out = sum(f * view_weights[:, v].to(f.dtype).view(1, co, 1, 1, 1)
                  for v, f in enumerate(views))
    else:
        k = square_kernel_size(tuple(weight.shape[2:]))
        stride, dilation = triple(stride, 'stride'), triple(dilation, 'dilation')
        pads = resolve_padding(padding, k, dilation, stride)
        conv_output_sizes(x.shape[2:], k, stride, pads, dilation, padding)  # or a ValueError
        kernel = view_kernel(weight, view_weights)
        if padding_mode == 'zeros' and all(p0 == p1 for p0, p1 in pads):  # conv3d pads itself
            out = F.conv3d(x, kernel, None, stride, tuple(p0 for p0, _ in pads), dilation, groups)
        else:  # as nn.Conv3d does for other modes: pad once, explicitly
            flat = [p for axis in reversed(pads) for p in axis]
            x = F.pad(x, flat, mode='constant' if padding_mode == 'zeros' else padding_mode)
            out = F.conv3d(x, kernel, None, stride, 0, dilation, groups)
    if bias is not None:
        out = out + bias.to(out.dtype).view(1, -1, 1, 1, 1)
    return out


class MeanACSConv(Conv2dWeightIn3d):
    """Mean-ACS convolution, with the constructor of ``nn.Conv3d``: input ``(N, Ci, D, H, W)``
    -> ``(N, Co, D', H', W')``; the mean of the three views of the 2D weight.

    Args:
        method: 'dense' (one conv3d with the views' summed kernel, the faster here) or 'planar'
            (three view convolutions); the same result.
        Other arguments: as ``nn.Conv3d``.
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
                 method: str = 'dense',
                 device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype)
        if method not in METHODS:
            raise ValueError(f'{type(self).__name__}: method must be one of {METHODS}, got '
                             f'{method!r}')
        self.method = method

    @property
    def depth_radius(self) -> int:
        """Slices each side an output depends on (the coronal and sagittal kernels' depth)."""
        return self.dilation[0] * (self.kernel_size[0] // 2)

    def view_weights(self) -> torch.Tensor:
        """``(Co, 3)``: each output channel's weight of the axial, coronal, sagittal view."""
        return self.weight.new_full((self.out_channels, 3), 1.0 / 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return soft_acs_conv3d(x, self.weight, self.view_weights(), self.bias, self.stride,
                               self.padding, self.dilation, self.groups, self.padding_mode,
                               self.method)


class SoftACSConv(MeanACSConv):
    """Soft-ACS convolution: :class:`MeanACSConv` with learnt view weights, ``softmax`` over
    ``soft_w_core`` ``(Co, 3)`` per output channel (initialised at zeros: Mean-ACS; see the
    module doc)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *args, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)
        self.soft_w_core = nn.Parameter(self.weight.new_zeros(out_channels, 3))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, 'soft_w_core'):
            nn.init.zeros_(self.soft_w_core)

    def view_weights(self) -> torch.Tensor:
        return self.soft_w_core.softmax(-1)
