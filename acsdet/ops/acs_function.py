"""The ACS convolution as a function: the three view convolutions and their memory-lean autograd.

See :mod:`acsdet.ops.acs_conv` for the operator and its exactness; the modules there call
:func:`acs_conv3d`.
"""
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .autocast import apply_as_convolution
from .conv_args import (PADDING_MODES, IntOr3, conv_output_sizes, resolve_acs_split,
                        resolve_padding, square_kernel_size, triple)


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
    stride, dilation = triple(stride, 'stride'), triple(dilation, 'dilation')
    pads = resolve_padding(padding, k, dilation, stride)
    split = resolve_acs_split(acs_kernel_split, co)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f'padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}')

    out_size = conv_output_sizes(x.shape[2:], k, stride, pads, dilation, padding)
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
                # the whole axis when it gives the same taps (a strided view of it would send
                # oneDNN's 1-channel stem convolution to the slow reference kernel)
                whole = (x.shape[2 + axis] - 1) // stride[axis] + 1 == out_size[axis]
                if offset or not whole:
                    window = (offset, need)
            else:
                conv_pad[axis] = -offset
            plans.append((lo, hi, axis, window, tuple(conv_pad)))
        lo = hi

    if groups == 1:
        out = apply_as_convolution(_ACSConvFunction, (x, weight), plans, stride, dilation,
                                   tuple(out_size))
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


def acs_merged_weight(weight: torch.Tensor, split: Sequence[int]) -> torch.Tensor:
    """The dense ``(Co, Ci, K, K, K)`` kernel of an ACS weight ``(Co, Ci, K, K)`` split
    ``(a, c, s)``: each view's 2D kernel on its plane through the centre, zero elsewhere (what
    each view's convolution is, :mod:`acsdet.ops.acs_conv`)."""
    co, ci, k, _ = weight.shape
    merged = weight.new_zeros(co, ci, k, k, k)
    lo = 0
    for axis, part in enumerate(split):
        merged[lo:lo + part].narrow(2 + axis, k // 2,
                                    1).copy_(weight[lo:lo + part].unsqueeze(2 + axis))
        lo += part
    return merged


def depth_unfolded_acs_conv3d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                              stride: Sequence[int], padding: Sequence[int],
                              split: Sequence[int]) -> torch.Tensor:
    """:func:`acs_conv3d` of a few-channel input (the stem's grey CT) as one 2D convolution:
    every slice with its ``K - 1`` depth neighbours as ``Ci * K`` channels, convolved in-plane
    with :func:`acs_merged_weight`. Three view convolutions of a one-channel input are
    memory-bound (each view's outputs copied into its channels, the result's layout ambiguous);
    this is one channels-last convolution whose output is already channels-last-3d. Depth
    stride 1 and ``'same'`` zero depth padding (``K // 2``), no dilation, no groups.

    ``x`` ``(N, Ci, D, H, W)`` -> ``(N, Co, D, H', W')`` (channels-last-3d)."""
    n, ci, d, h, w = x.shape
    k = weight.shape[-1]
    c = k // 2
    if stride[0] != 1 or padding[0] != c:
        raise ValueError('depth_unfolded_acs_conv3d: depth stride 1 and depth padding K // 2')
    if torch.is_autocast_enabled(x.device.type):  # unfold in the convolution's dtype
        x = x.to(torch.get_autocast_dtype(x.device.type))
    cols = F.pad(x, (0, 0, 0, 0, c, c)).unfold(2, k, 1)  # (N, Ci, D, H, W, K): a view
    cols = cols.permute(0, 2, 1, 5, 3, 4).reshape(n * d, ci * k, h, w)  # a copy
    cols = cols.contiguous(memory_format=torch.channels_last)
    merged = acs_merged_weight(weight, split).flatten(1, 2)  # (Co, Ci * K, K, K)
    out = F.conv2d(cols, merged, bias, tuple(stride[1:]), tuple(padding[1:]))
    out = out.contiguous(memory_format=torch.channels_last)  # (N * D, Co, H', W')
    return out.unflatten(0, (n, d)).transpose(1, 2)


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
