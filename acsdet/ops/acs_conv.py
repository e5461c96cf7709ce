"""ACS convolution: a 2D kernel split by output channel over the axial, coronal and sagittal views.

"Reinventing 2D Convolutions for 3D Images" (Yang et al., IEEE JBHI). A 2D weight ``(Co, Ci/g, K, K)``
is split by output channel into ``(a, c, s)`` parts; on an input ``(N, Ci, D, H, W)`` part one is a 3D
convolution with kernel ``(1, K, K)`` (axial: the 2D axes map to H, W), part two ``(K, 1, K)``
(coronal: D, W) and part three ``(K, K, 1)`` (sagittal: D, H). The outputs are concatenated on
channels and the bias is added once. The split and the view order are those of the official
``acsconv`` package, so weights and outputs are interchangeable with it.

Each view is exactly the dense ``nn.Conv3d`` with a ``(K, K, K)`` kernel that is zero except on the
view's plane through the kernel centre (index ``K // 2`` of the collapsed axis), for every stride,
padding (ints, per axis, ``'same'``, ``'valid'``), padding mode, dilation and grouping, and the
output shape is always that of ``nn.Conv3d`` with the same arguments.
"""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

_PADDING_MODES = ('zeros', 'reflect', 'replicate', 'circular')
IntOr3 = Union[int, Sequence[int]]


def _triple(value, name: str) -> Tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 3:
        raise ValueError(f'{name} must be an int or a sequence of 3 ints, got {value}')
    return value


def square_kernel_size(kernel_size, cls_name: str = 'ACSConv') -> int:
    """The single kernel size K of a square (K, K) or cubic (K, K, K) kernel; else ValueError."""
    ks = (kernel_size, ) if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(ks) not in (1, 2, 3) or len(set(ks)) != 1 or ks[0] < 1:
        raise ValueError(
            f'{cls_name} needs a square (K, K) or cubic (K, K, K) kernel, got '
            f'kernel_size={kernel_size}: non-square 2D kernels have no ACS counterpart')
    return int(ks[0])


def default_acs_split(out_channels: int) -> Tuple[int, int, int]:
    """The official split: remainder first to the axial, then to the coronal view."""
    n, r = divmod(out_channels, 3)
    return (n + (r > 0), n + (r > 1), n)


def resolve_acs_split(acs_kernel_split: Optional[Sequence[int]],
                      out_channels: int) -> Tuple[int, int, int]:
    """The (axial, coronal, sagittal) output channels: given, or the official default; checked."""
    split = (
        default_acs_split(out_channels) if acs_kernel_split is None else tuple(
            int(c) for c in acs_kernel_split))
    if len(split) != 3 or sum(split) != out_channels or min(split) < 0:
        raise ValueError(f'acs_kernel_split {split} must be 3 non-negative ints summing to '
                         f'out_channels={out_channels}')
    return split


def resolve_padding(padding, kernel_size: int, dilation: Tuple[int, int, int],
                    stride: Tuple[int, int, int]) -> Tuple[Tuple[int, int], ...]:
    """Per-axis ``(before, after)`` padding for ints, per-axis ints, ``'same'`` or ``'valid'``.

    ``'same'`` follows ``nn.Conv3d``: total ``d * (K - 1)``, the odd pixel after; stride must be 1.
    """
    if isinstance(padding, str):
        if padding == 'valid':
            return ((0, 0), ) * 3
        if padding == 'same':
            if any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            total = [d * (kernel_size - 1) for d in dilation]
            return tuple((t // 2, t - t // 2) for t in total)
        raise ValueError(f"padding must be an int, 3 ints, 'same' or 'valid', got {padding!r}")
    return tuple((p, p) for p in _triple(padding, 'padding'))


def conv_output_size(size: int, kernel_size: int, stride: int, pad: Tuple[int, int],
                     dilation: int) -> int:
    return (size + pad[0] + pad[1] - dilation * (kernel_size - 1) - 1) // stride + 1


def _part_conv(x, weight, stride, padding, dilation, groups, out_lo, out_hi):
    """``F.conv3d`` for output channels ``[out_lo, out_hi)`` of a (possibly grouped) convolution.

    With groups > 1 the range is widened to whole groups (at most one extra group at each end),
    computed as a grouped convolution on the matching input channels, then cut back.
    """
    if groups == 1:
        return F.conv3d(x, weight[out_lo:out_hi], None, stride, padding, dilation, 1)
    out_per_group = weight.shape[0] // groups
    in_per_group = weight.shape[1]
    g0, g1 = out_lo // out_per_group, -(-out_hi // out_per_group)
    y = F.conv3d(x[:, g0 * in_per_group:g1 * in_per_group],
                 weight[g0 * out_per_group:g1 * out_per_group], None, stride, padding, dilation,
                 g1 - g0)
    lo = out_lo - g0 * out_per_group
    return y[:, lo:lo + out_hi - out_lo]


def acs_conv3d(x: torch.Tensor,
               weight: torch.Tensor,
               bias: Optional[torch.Tensor] = None,
               stride: IntOr3 = 1,
               padding: Union[IntOr3, str] = 0,
               dilation: IntOr3 = 1,
               groups: int = 1,
               acs_kernel_split: Optional[Sequence[int]] = None,
               padding_mode: str = 'zeros') -> torch.Tensor:
    """ACS convolution of ``x`` ``(N, Ci, D, H, W)`` with a 2D ``weight`` ``(Co, Ci/groups, K, K)``.

    Returns ``(N, Co, D', H', W')``, the shape ``nn.Conv3d`` with a ``(K, K, K)`` kernel gives.
    """
    if x.dim() != 5:
        raise ValueError(
            f'ACS convolution expects (N, C, D, H, W) input, got shape {tuple(x.shape)}')
    co, _, kh, kw = weight.shape
    k = square_kernel_size((kh, kw))
    stride, dilation = _triple(stride, 'stride'), _triple(dilation, 'dilation')
    pads = resolve_padding(padding, k, dilation, stride)
    split = resolve_acs_split(acs_kernel_split, co)
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f'padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}')

    in_size = x.shape[2:]
    out_size = [conv_output_size(in_size[a], k, stride[a], pads[a], dilation[a]) for a in range(3)]
    if min(out_size) < 1:
        raise ValueError(f'input size {tuple(in_size)} is too small for kernel size {k} with '
                         f'dilation {dilation}, padding {padding}: output size would be {out_size}')
    centre = k // 2
    symmetric = all(p0 == p1 for p0, p1 in pads)
    # Fast path: odd K, symmetric zero padding. Otherwise pad once for all views (as nn.Conv3d
    # does for non-zero modes) and read the centre tap from the padded input.
    explicit = padding_mode != 'zeros' or not symmetric or (k % 2 == 0 and any(map(any, pads)))
    if explicit:
        flat = [p for axis in reversed(pads) for p in axis]
        x = F.pad(x, flat, mode='constant' if padding_mode == 'zeros' else padding_mode)
        pads = ((0, 0), ) * 3

    # One plan per non-empty view: output channels [lo, hi), the collapsed axis, the narrowing of
    # the input along it (offset, length) or None, and the convolution's padding.
    plans, lo = [], 0
    for axis, part in enumerate(split):  # collapsed axis: D (axial), H (coronal), W (sagittal)
        hi = lo + part
        if part:
            # The view's single tap along the collapsed axis reads input index o * s + offset;
            # under the fast path's conditions that range lies inside the input or its padding.
            offset = centre * dilation[axis] - pads[axis][0]
            conv_pad = [p[0] for p in pads]
            window = None
            if offset >= 0:
                conv_pad[axis] = 0
                need = (out_size[axis] - 1) * stride[axis] + 1
                if offset or need != x.shape[2 + axis]:
                    window = (offset, need)
            else:
                conv_pad[axis] = -offset
            plans.append((lo, hi, axis, window, tuple(conv_pad)))
        lo = hi

    if groups == 1:
        out = _acs_function(x, weight, plans, stride, dilation, tuple(out_size))
    else:  # general groups: composed from autograd ops
        outputs = []
        for lo, hi, axis, window, conv_pad in plans:
            xa = x if window is None else x.narrow(2 + axis, *window)
            y = _part_conv(xa, weight.unsqueeze(2 + axis), stride, conv_pad, dilation, groups, lo,
                           hi)
            if y.shape[2 + axis] != out_size[axis]:
                y = y.narrow(2 + axis, 0, out_size[axis])
            outputs.append(y)
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)
    if bias is not None:
        out = out + bias.to(out.dtype).view(1, -1, 1, 1, 1)  # as conv3d adds it under autocast
    return out


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """Channels-last-3d for an ``(N, C, D, H, W)`` tensor stored so (oneDNN and cuDNN then run
    every view without layout conversions), else contiguous."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


# Input gradients at least this large are accumulated in chunks (memory); smaller ones in one call.
_CHUNK_BYTES = 4 * 2**20


class _ACSConvFunction(torch.autograd.Function):
    """The three view convolutions (groups=1) with a memory-lean forward and backward.

    Forward writes each view straight into one output tensor (no concatenation of three parts).
    Backward accumulates the views' input gradients in place; for large inputs the second and
    third are computed in batch chunks (input-channel chunks for N=1), so at most a chunk is held
    beside the accumulated gradient: ACS then needs about the memory of one (1, K, K) convolution.
    """

    @staticmethod
    def forward(ctx, x, weight, plans, stride, dilation, out_size):
        n = x.shape[0]
        out = torch.empty(
            (n, weight.shape[0]) + out_size,
            dtype=x.dtype,
            device=x.device,
            memory_format=_memory_format(x))
        for lo, hi, axis, window, conv_pad in plans:
            xa = x if window is None else x.narrow(2 + axis, *window)
            out[:, lo:hi] = F.conv3d(xa, weight[lo:hi].unsqueeze(2 + axis), None, stride, conv_pad,
                                     dilation)
        ctx.save_for_backward(x, weight)
        ctx.conf = (plans, stride, dilation)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        plans, stride, dilation = ctx.conf
        need_x, need_w = ctx.needs_input_grad[:2]
        grad_x = None
        grad_w = torch.empty_like(weight) if need_w else None
        conv_bwd = torch.ops.aten.convolution_backward
        for lo, hi, axis, window, conv_pad in plans:
            xa = x if window is None else x.narrow(2 + axis, *window)
            w = weight[lo:hi].unsqueeze(2 + axis)
            g = grad_out[:, lo:hi]
            args = (list(stride), list(conv_pad), list(dilation), False, [0, 0, 0], 1)
            if need_w:
                grad_w[lo:hi] = conv_bwd(g, xa, w, None, *args,
                                         [False, True, False])[1].squeeze(2 + axis)
            if not need_x:
                continue
            if grad_x is None:
                gx = conv_bwd(g, xa, w, None, *args, [True, False, False])[0]
                if window is None:
                    grad_x = gx
                    continue
                grad_x = torch.zeros_like(x, memory_format=_memory_format(x))
                grad_x.narrow(2 + axis, *window).copy_(gx)
                del gx
                continue
            target = grad_x if window is None else grad_x.narrow(2 + axis, *window)
            if target.numel() * target.element_size() < _CHUNK_BYTES:  # small: one call is faster
                target += conv_bwd(g, xa, w, None, *args, [True, False, False])[0]
            elif x.shape[0] > 1:  # batch chunks
                for i in range(x.shape[0]):
                    target[i:i + 1] += conv_bwd(g[i:i + 1], xa[i:i + 1], w, None, *args,
                                                [True, False, False])[0]
            else:  # input-channel chunks
                ci = x.shape[1]
                for c0, c1 in ((0, ci // 2), (ci // 2, ci)):
                    if c1 > c0:
                        target[:, c0:c1] += conv_bwd(g, xa[:, c0:c1], w[:, c0:c1], None, *args,
                                                     [True, False, False])[0]
        return grad_x, grad_w, None, None, None, None


def _acs_function(x: torch.Tensor, weight: torch.Tensor, *conf) -> torch.Tensor:
    """``_ACSConvFunction`` under ``torch.autocast`` as ``F.conv3d`` behaves there (convolutions
    are on autocast's lower-precision list, CUDA float16 and CPU bfloat16 alike): the inputs are
    cast to the autocast dtype and the function runs with autocast off, so its forward and its
    hand-written backward compute in that one dtype; the casts carry the gradients back to the
    float32 parameters (what ``torch.amp.custom_fwd(cast_inputs=...)`` does, for any device)."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device, enabled=False):
            return _ACSConvFunction.apply(x.to(dtype), weight.to(dtype), *conf)
    return _ACSConvFunction.apply(x, weight, *conf)


class _Conv2dWeightIn3d(nn.Module):
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
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f'{name}: padding_mode must be one of {_PADDING_MODES}, '
                             f'got {padding_mode!r}')
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = (k, k, k)
        self.stride, self.dilation = _triple(stride, 'stride'), _triple(dilation, 'dilation')
        self.padding = padding if isinstance(padding, str) else _triple(padding, 'padding')
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


class ACSConv(_Conv2dWeightIn3d):
    """ACS convolution with the constructor of ``nn.Conv3d`` plus ``acs_kernel_split``.

    Input ``(N, Ci, D, H, W)`` -> output ``(N, Co, D', H', W')`` as ``nn.Conv3d(..., K)`` would give.
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return acs_conv3d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                          self.groups, self.acs_kernel_split, self.padding_mode)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', acs_kernel_split={self.acs_kernel_split}'


def _place_along(y: torch.Tensor, dim: int, shift: int, length: int) -> torch.Tensor:
    """Shift ``y`` by ``shift`` along ``dim`` into a zero tensor of ``length`` (crops if needed)."""
    pad = [0] * (2 * (y.dim() - dim))
    pad[-2], pad[-1] = shift, length - shift - y.shape[dim]
    return F.pad(y, pad)


class ACSConvTranspose(_Conv2dWeightIn3d):
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
        self.output_padding = _triple(output_padding, 'output_padding')
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
