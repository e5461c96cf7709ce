"""Slice shifts before 2D-pretrained ``(1, K, K)`` convolutions: TSM and AlignShift.

Both act on ``(N, C, D, H, W)`` with ``fold = C // n_fold`` (8 in the authors' code):

- **TSM** (temporal shift, Lin et al. ICCV 2019, on CT slices): channels ``[0, fold)`` take the
  next slice's values, ``y[:, c, d] = x[:, c, d + 1]``; channels ``[fold, 2 fold)`` the previous
  slice's, ``y[:, c, d] = x[:, c, d - 1]``; a slice past the volume's end is zero; the other
  channels are kept. No parameters.
- **AlignShift** (Yang et al., MICCAI 2020): the same two folds are *blended* with that neighbour
  by the sample's slice thickness ``t``: ``y = a * x[d] + (1 - a) * x[d +- 1]`` with
  ``a = 1 - clamp(ref_thickness / t, 0, 1)`` (``ref_thickness`` 2 mm): slices at or thinner than
  the reference are shifted fully (as TSM), a 5 mm slice keeps 60 % of itself. At the volume's
  ends the missing neighbour is the slice itself (``y = x``, the authors' default
  ``shift_padding_zero=False``), or zero with ``zero_pad=True`` (``y = a * x``).

Memory: a shifted copy of every convolution input would be kept for the backward pass beside the
unshifted input, which the layer before (BN-ReLU) keeps anyway: 1.4x the 2.5D backbone's peak
memory. The shift convolutions therefore run as one autograd Function that keeps only the
unshifted input and shifts it again in the backward pass (as ACSConv keeps its memory to a
plain convolution's); the shift's own gradient is its adjoint, taken by autograd on that
recomputation.
"""
import contextlib
from typing import Iterator, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..defaults import ALIGNSHIFT_REF_THICKNESS_MM, SHIFT_N_FOLD
from .autocast import apply_as_convolution
from .conv2_5d import Conv2_5d
from .conv_args import IntOr3


def alignshift_alpha(thickness: torch.Tensor, ref_thickness: float) -> torch.Tensor:
    """``1 - clamp(ref_thickness / thickness, 0, 1)`` per sample, ``(N,)``: the share of a slice
    that stays in place."""
    return 1 - (ref_thickness / thickness).clamp(0.0, 1.0)


def slice_shift(x: torch.Tensor,
                fold: int,
                keep: Optional[torch.Tensor] = None,
                zero_pad: bool = True) -> torch.Tensor:
    """Shift channels ``[0, fold)`` one slice towards the start and ``[fold, 2 fold)`` one slice
    towards the end of ``x`` ``(N, C, D, H, W)``, each blended with the unshifted value by
    ``keep`` ``(N,)`` (None: 0, a full shift, TSM). ``zero_pad``: the slice past an end is zero;
    otherwise it is the edge slice itself."""
    if x.dim() != 5:
        raise ValueError(f'slice_shift expects (N, C, D, H, W), got {tuple(x.shape)}')
    if fold <= 0:
        return x
    if 2 * fold > x.shape[1]:
        raise ValueError(f'2 x fold ({fold}) exceeds the {x.shape[1]} channels')
    up, down, rest = x[:, :fold], x[:, fold:2 * fold], x[:, 2 * fold:]
    edge_up = torch.zeros_like(up[:, :, :1]) if zero_pad else up[:, :, -1:]
    edge_down = torch.zeros_like(down[:, :, :1]) if zero_pad else down[:, :, :1]
    nxt = torch.cat([up[:, :, 1:], edge_up], 2)  # y[d] <- x[d + 1]
    prv = torch.cat([edge_down, down[:, :, :-1]], 2)  # y[d] <- x[d - 1]
    if keep is not None:
        w = (1 - keep).to(x.dtype).view(-1, 1, 1, 1, 1)
        nxt = torch.lerp(up, nxt, w)
        prv = torch.lerp(down, prv, w)
    return torch.cat([nxt, prv, rest], 1)


class _ShiftConvFunction(torch.autograd.Function):
    """``slice_shift`` then a ``(1, K, K)`` ``conv3d`` (zero padding given as ints), keeping the
    unshifted input for the backward pass instead of the shifted copy."""

    @staticmethod
    def forward(ctx, x, weight, bias, keep, fold, zero_pad, stride, padding, dilation, groups):
        xs = slice_shift(x, fold, keep, zero_pad)
        out = F.conv3d(xs, weight.unsqueeze(2), bias, stride, padding, dilation, groups)
        ctx.save_for_backward(x, weight, keep)
        ctx.conf = (fold, zero_pad, stride, padding, dilation, groups, bias is not None)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, weight, keep = ctx.saved_tensors
        fold, zero_pad, stride, padding, dilation, groups, has_bias = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        with torch.enable_grad():  # the shift again, with its graph for the adjoint
            xd = x.detach().requires_grad_(need_x)
            xs = slice_shift(xd, fold, keep, zero_pad)
        gxs, gw, gb = torch.ops.aten.convolution_backward(grad_out, xs.detach(),
                                                          weight.unsqueeze(2),
                                                          [weight.shape[0]] if has_bias else None,
                                                          list(stride), list(padding),
                                                          list(dilation), False, [0, 0, 0], groups,
                                                          [need_x, need_w, need_b and has_bias])
        grad_x = None
        if need_x:
            grad_x = gxs if xs is xd else torch.autograd.grad(xs, xd, gxs)[0]
        return (grad_x, gw.squeeze(2) if gw is not None else None, gb, None, None, None, None, None,
                None, None)


class ShiftConv(Conv2_5d):
    """A slice shift of the input, then ``Conv2_5d`` (a ``(1, K, K)`` kernel, 2D weight, so 2D
    checkpoints load unchanged). ``shift=False`` turns the shift off (a plain 2.5D convolution,
    as the authors' stems and transitions)."""

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
                 n_fold: int = SHIFT_N_FOLD,
                 shift: bool = True,
                 device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype)
        if n_fold < 2:
            raise ValueError(f'{type(self).__name__}: n_fold must be >= 2, got {n_fold}')
        self.n_fold, self.shift = n_fold, shift

    @property
    def depth_radius(self) -> int:
        """Slices each side an output depends on: one where the shift is on."""
        return 1 if self.shift else 0

    @property
    def fold(self) -> int:
        return self.in_channels // self.n_fold if self.shift else 0

    def _shift_conv(self, x: torch.Tensor, keep: Optional[torch.Tensor],
                    zero_pad: bool) -> torch.Tensor:
        fold = self.fold
        if not fold or x.dim() != 5:
            return super().forward(x)  # no shift (or a shape error from the convolution)
        if self.padding_mode != 'zeros' or isinstance(self.padding, str):
            return super().forward(slice_shift(x, fold, keep, zero_pad))  # plain autograd
        return apply_as_convolution(_ShiftConvFunction, (x, self.weight, self.bias), keep, fold,
                                    zero_pad, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', n_fold={self.n_fold}, shift={self.shift}'


class TSMConv(ShiftConv):
    """TSM shift (zero past the ends), then a ``(1, K, K)`` convolution. Input
    ``(N, Ci, D, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._shift_conv(x, None, True)


class AlignShiftConv(ShiftConv):
    """AlignShift (thickness-weighted shift), then a ``(1, K, K)`` convolution.

    Input ``(N, Ci, D, H, W)`` and the per-sample thickness ``(N,)`` mm, as an argument:
    ``forward(x, thickness)`` (the module keeps no per-batch state; networks hand it down, as
    :class:`~acsdet.models.backbones.TruncatedDenseNet` does). ``takes_thickness`` tells a
    network which of its layers want it.
    """

    takes_thickness = True

    def __init__(self,
                 *args,
                 ref_thickness: float = ALIGNSHIFT_REF_THICKNESS_MM,
                 zero_pad: bool = False,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if not ref_thickness > 0:
            raise ValueError(f'AlignShiftConv: ref_thickness must be > 0, got {ref_thickness}')
        self.ref_thickness, self.zero_pad = float(ref_thickness), zero_pad

    def forward(self, x: torch.Tensor, thickness: Optional[torch.Tensor] = None) -> torch.Tensor:
        t = thickness
        if self.fold:
            scoped = t is None and _SCOPED in self.__dict__
            if scoped:
                t = self.__dict__[_SCOPED]
            if t is None:
                raise RuntimeError(
                    'AlignShiftConv needs the slice thickness of every sample: pass thickness '
                    "(N,) mm, run the network inside acsdet.ops.slice_thickness(model, t), or "
                    "use the 'ThicknessAwareMaskRCNN' detector, which hands the samples' "
                    'slice_interval to the backbone')
            dtype = torch.promote_types(x.dtype, torch.float32)  # the blend weight at >= fp32
            t = torch.as_tensor(t, device=x.device).to(dtype).reshape(-1)
            if scoped and t.numel() == 1:  # one thickness for the whole batch
                t = t.expand(x.shape[0])
            if t.numel() != x.shape[0]:
                raise ValueError(f'AlignShiftConv: {t.numel()} thicknesses for a batch of '
                                 f'{x.shape[0]}')
            return self._shift_conv(x, alignshift_alpha(t, self.ref_thickness), self.zero_pad)
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', ref_thickness={self.ref_thickness}'


#: Where :func:`slice_thickness` keeps a layer's thickness for the duration of its block.
_SCOPED = '_scoped_thickness'
_ABSENT = object()


@contextlib.contextmanager
def slice_thickness(model: nn.Module, thickness) -> Iterator[nn.Module]:
    """Hand ``thickness`` to every AlignShift layer of ``model`` for the duration of the block.

    For networks that cannot pass it down as an argument (a converted ``nn.Sequential`` or
    ResNet): ``with slice_thickness(model, t): y = model(x)``. Inside the block each
    :class:`AlignShiftConv` of ``model`` called without a thickness uses ``thickness`` (``(N,)``
    mm, or one number for the whole batch); an explicit argument still wins. After the block, also
    when it raises, the layers hold nothing again (an inner block over a submodule restores the
    outer block's value). With gradient checkpointing, run the backward inside the block: the
    recomputation reads the thickness then.

    Args:
        model: a module holding AlignShift layers (any nesting).
        thickness: per-sample slice thickness, mm.

    Returns:
        A context manager yielding ``model``.
    """
    layers = [m for m in model.modules() if isinstance(m, AlignShiftConv)]
    before = [m.__dict__.get(_SCOPED, _ABSENT) for m in layers]
    for m in layers:
        m.__dict__[_SCOPED] = thickness
    try:
        yield model
    finally:
        for m, old in zip(layers, before):
            if old is _ABSENT:
                m.__dict__.pop(_SCOPED, None)
            else:
                m.__dict__[_SCOPED] = old
