"""Convert a 2D PyTorch model into its 3D counterpart: ACS, 2.5D, 3D (I3D) or A3D.

``convert(model, mode)`` returns an ordinary ``nn.Module`` (a converted deep copy; no proxy) whose
layers take ``(N, C, D, H, W)`` input, with the 2D weights carried over. ACS and 2.5D keep every
weight in its 2D shape, so ``converted.load_state_dict(model_2d.state_dict())`` works as it is:

=================  ==========================  ===========================  ========================
2D layer           ``'acs'``                   ``'2.5d'``                   ``'3d'``
=================  ==========================  ===========================  ========================
Conv2d K x K       :class:`ACSConv` (1:1)      :class:`Conv2_5d` (1:1)      Conv3d K^3, I3D-inflated
Conv2d 1 x 1       Conv3d 1x1x1 (2D weight)    Conv3d 1x1x1 (2D weight)     Conv3d 1x1x1
ConvTranspose2d    :class:`ACSConvTranspose`   ConvTranspose 1xKxK (2D w.)  ConvTranspose3d K^3
BatchNorm2d        BatchNorm3d                 BatchNorm3d                  BatchNorm3d
InstanceNorm2d     InstanceNorm3d              InstanceNorm3d               InstanceNorm3d
Max/AvgPool2d      (pool_depth, k, k) pooling  same                         same
Adaptive pools     (d, h, w) = (h, h, w)       same                         same
Upsample           scale (1, s, s)             same                         same
Dropout2d          Dropout3d                   Dropout3d                    Dropout3d
=================  ==========================  ===========================  ========================

GroupNorm, SyncBatchNorm, LayerNorm, activations, Dropout, Linear and containers are dimension-free and
kept. ``'a3d'`` is ``'2.5d'`` with a learned per-channel D x D slice fusion before every K x K
convolution (:class:`A3DConv`; needs ``num_slices``; depth must stay D). ``'tsm'`` and
``'alignshift'`` are ``'2.5d'`` with a slice shift of 1/``n_fold`` of the channels each way
before every convolution (:class:`~acsdet.ops.shift.TSMConv`;
:class:`~acsdet.ops.shift.AlignShiftConv`, weighted by each sample's slice thickness, so depth
must stay as it is). Strided convolutions keep depth by default (``conv_depth_stride=1``, the
paper's detection setting); ``conv_depth_stride=None`` uses the 2D stride along depth too. Anything else with 2D
semantics raises :class:`ConversionError` naming the module. Only module attributes are read (never
``Conv2d.__init__``'s argument names), so new torch versions do not break it. Functional 2D calls
inside a ``forward`` (``F.max_pool2d`` ...) cannot be seen by a converter: replace them by modules.
"""
import copy
from typing import Optional

import torch
import torch.nn as nn

from .ops import A3DConv, ACSConv, ACSConvTranspose, Conv2_5d, ConvTranspose2_5d
from .ops.shift import AlignShiftConv, TSMConv

MODES = ('acs', '2.5d', '3d', 'a3d', 'tsm', 'alignshift')
# modes whose convolutions are (1, K, K) with the 2D weight: everything else as in '2.5d'
_PLANAR = ('2.5d', 'a3d', 'tsm', 'alignshift')

# Leaf modules that are correct on 5D input as they are.
_DIMENSION_FREE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
                   nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Softmax,
                   nn.Identity, nn.Dropout, nn.AlphaDropout, nn.Linear, nn.Flatten, nn.GroupNorm,
                   nn.LayerNorm, nn.SyncBatchNorm)


class ConversionError(TypeError):
    """A module the converter cannot turn into a 3D counterpart."""


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _copy_bias(src, dst):
    if src.bias is not None:
        with torch.no_grad():
            dst.bias.copy_(src.bias)


def _convert_conv(m: nn.Conv2d,
                  name: str,
                  mode: str,
                  conv_depth_stride,
                  inflate: bool,
                  num_slices: Optional[int] = None,
                  shift_args: Optional[dict] = None):
    kh, kw = m.kernel_size
    (sh, sw), (dh, dw) = m.stride, m.dilation
    sd = sh if conv_depth_stride is None else conv_depth_stride
    padding = m.padding if isinstance(m.padding, str) else tuple(m.padding)
    args = dict(groups=m.groups, bias=m.bias is not None)
    if kh != kw:
        raise ConversionError(f'cannot convert {name} ({m}): {mode} needs a square kernel')
    pad_d = padding if isinstance(padding, str) else padding[0]
    if mode == '3d' and kh == 1:
        pad3 = padding if isinstance(padding, str) else (0, ) + padding
        new = nn.Conv3d(
            m.in_channels,
            m.out_channels,
            1, (sd, sh, sw),
            pad3, (1, dh, dw),
            padding_mode=m.padding_mode,
            **args)
        with torch.no_grad():
            new.weight.copy_(m.weight.unsqueeze(2))
        _copy_bias(m, new)
        return new
    if mode in ('tsm', 'alignshift'):  # every convolution, 1 x 1 included (the authors' layers)
        pad3 = padding if isinstance(padding, str) else (0, ) + padding
        cls, extra = (TSMConv, {}) if mode == 'tsm' else (AlignShiftConv, dict(
            ref_thickness=shift_args['ref_thickness'], zero_pad=shift_args['zero_pad']))
        new = cls(
            m.in_channels,
            m.out_channels,
            kh, (sd, sh, sw),
            pad3, (1, dh, dw),
            padding_mode=m.padding_mode,
            n_fold=shift_args['n_fold'],
            **extra,
            **args)
    elif mode == 'a3d' and kh > 1:
        pad3 = padding if isinstance(padding, str) else (0, ) + padding
        new = A3DConv(
            m.in_channels,
            m.out_channels,
            kh,
            num_slices, (sd, sh, sw),
            pad3, (1, dh, dw),
            padding_mode=m.padding_mode,
            **args)
    elif mode in ('2.5d', 'a3d') or kh == 1:  # 1x1: the 1x1x1 Conv3d in the 2D weight layout
        pad3 = padding if isinstance(padding, str) else (0, ) + padding
        new = Conv2_5d(
            m.in_channels,
            m.out_channels,
            kh, (sd, sh, sw),
            pad3, (1, dh, dw),
            padding_mode=m.padding_mode,
            **args)
    elif mode == 'acs':
        pad3 = padding if isinstance(padding, str) else (pad_d, ) + padding
        new = ACSConv(
            m.in_channels,
            m.out_channels,
            kh, (sd, sh, sw),
            pad3, (dh, dh, dw),
            padding_mode=m.padding_mode,
            **args)
    else:
        pad3 = padding if isinstance(padding, str) else (pad_d, ) + padding
        new = nn.Conv3d(
            m.in_channels,
            m.out_channels,
            kh, (sd, sh, sw),
            pad3, (dh, dh, dw),
            padding_mode=m.padding_mode,
            **args)
        if inflate:  # I3D: repeat along depth, divide by K
            with torch.no_grad():
                new.weight.copy_(m.weight.unsqueeze(2).repeat(1, 1, kh, 1, 1) / kh)
            _copy_bias(m, new)
        return new
    with torch.no_grad():
        new.weight.copy_(m.weight)
    _copy_bias(m, new)
    return new


def _convert_conv_transpose(m: nn.ConvTranspose2d, name, mode, conv_depth_stride, inflate):
    kh, kw = m.kernel_size
    if kh != kw:
        raise ConversionError(f'cannot convert {name} ({m}): {mode} needs a square kernel')
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = m.stride, m.padding, m.output_padding, m.dilation
    sd = sh if conv_depth_stride is None else conv_depth_stride
    args = dict(groups=m.groups, bias=m.bias is not None)
    if mode == 'acs':
        new = ACSConvTranspose(
            m.in_channels,
            m.out_channels,
            kh, (sd, sh, sw), (ph, ph, pw), (oh if sd > 1 else 0, oh, ow),
            dilation=(dh, dh, dw),
            **args)
        weight = m.weight
    elif mode in _PLANAR:
        new = ConvTranspose2_5d(
            m.in_channels,
            m.out_channels,
            kh, (sd, sh, sw), (0, ph, pw), (0, oh, ow),
            dilation=(1, dh, dw),
            **args)
        weight = m.weight
    else:
        new = nn.ConvTranspose3d(
            m.in_channels,
            m.out_channels,
            kh, (sd, sh, sw), (ph, ph, pw), (oh if sd > 1 else 0, oh, ow),
            dilation=(dh, dh, dw),
            **args)
        if not inflate:
            return new
        weight = m.weight.unsqueeze(2).repeat(1, 1, kh, 1, 1) / kh
    with torch.no_grad():
        new.weight.copy_(weight)
    _copy_bias(m, new)
    return new


def _convert_norm(m, name):
    if isinstance(m, nn.BatchNorm2d):
        new = nn.BatchNorm3d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
    else:
        new = nn.InstanceNorm3d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
    new.load_state_dict(m.state_dict())
    new.train(m.training)
    return new


def _convert_pool(m, name, pool_depth: int):
    if isinstance(m, (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)):
        oh, ow = _pair(m.output_size)
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return nn.AdaptiveAvgPool3d((oh, oh, ow))
        return nn.AdaptiveMaxPool3d((oh, oh, ow), m.return_indices)
    (kh, kw), (sh, sw), (ph, pw) = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
    pd = ph if pool_depth == kh else 0
    kernel, stride, padding = (pool_depth, kh, kw), (pool_depth, sh, sw), (pd, ph, pw)
    if isinstance(m, nn.MaxPool2d):
        dh, dw = _pair(m.dilation)
        return nn.MaxPool3d(kernel, stride, padding, (1, dh, dw), m.return_indices, m.ceil_mode)
    return nn.AvgPool3d(kernel, stride, padding, m.ceil_mode, m.count_include_pad,
                        m.divisor_override)


def _convert_upsample(m: nn.Upsample, name):
    if m.size is not None or m.scale_factor is None:
        raise ConversionError(f'cannot convert {name} ({m}): only scale_factor upsampling has a '
                              '3D counterpart that keeps depth')
    sh, sw = _pair(
        m.scale_factor) if not isinstance(m.scale_factor, float) else (m.scale_factor, ) * 2
    modes = {'nearest': 'nearest', 'bilinear': 'trilinear', 'nearest-exact': 'nearest-exact'}
    if m.mode not in modes:
        raise ConversionError(f'cannot convert {name} ({m}): mode {m.mode!r} has no 3D counterpart')
    return nn.Upsample(
        scale_factor=(1.0, float(sh), float(sw)), mode=modes[m.mode], align_corners=m.align_corners)


def convert_module(m: nn.Module,
                   name: str,
                   mode: str,
                   pool_depth: int = 1,
                   conv_depth_stride: Optional[int] = 1,
                   inflate: bool = True,
                   num_slices: Optional[int] = None,
                   shift_args: Optional[dict] = None) -> Optional[nn.Module]:
    """The 3D counterpart of one module, or None if it has children to convert one by one."""
    if isinstance(m, nn.Conv2d):
        return _convert_conv(m, name, mode, conv_depth_stride, inflate, num_slices, shift_args)
    if isinstance(m, nn.ConvTranspose2d):
        return _convert_conv_transpose(m, name, mode, conv_depth_stride, inflate)
    if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
        return _convert_norm(m, name)
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)):
        return _convert_pool(m, name, pool_depth)
    if isinstance(m, nn.Upsample):
        return _convert_upsample(m, name)
    if isinstance(m, nn.Dropout2d):
        return nn.Dropout3d(m.p, m.inplace)
    if isinstance(m, _DIMENSION_FREE) or isinstance(
            m, (A3DConv, ACSConv, ACSConvTranspose, Conv2_5d, nn.Conv3d, nn.ConvTranspose3d,
                nn.BatchNorm3d, nn.InstanceNorm3d, nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveAvgPool3d,
                nn.AdaptiveMaxPool3d, nn.Dropout3d)):
        return m
    if next(m.children(), None) is not None:
        return None
    if type(m).__name__.lower().endswith('2d') or any(p.dim() == 4 for p in m.parameters(False)):
        raise ConversionError(f'cannot convert {name} ({type(m).__name__}) to {mode}: no 3D '
                              'counterpart is known; convert it yourself or replace it')
    return m  # a parameter-free leaf without 2D semantics (e.g. a custom activation)


def convert(model: nn.Module,
            mode: str,
            *,
            pool_depth: int = 1,
            conv_depth_stride: Optional[int] = 1,
            inflate: bool = True,
            num_slices: Optional[int] = None,
            n_fold: int = 8,
            ref_thickness: float = 2.0,
            zero_pad: bool = False) -> nn.Module:
    """A 3D copy of the 2D ``model`` for ``mode`` in :data:`MODES`.

    Args:
        pool_depth: kernel and stride of pooling along depth (1 keeps depth, as the paper's
            detector; 2 halves it, as 3D classification networks do).
        conv_depth_stride: depth stride of strided convolutions; None uses the 2D stride.
        inflate: ``'3d'`` only; True inflates the 2D kernels I3D-style (repeat along depth, divide
            by K), False keeps ``nn.Conv3d``'s random initialisation.
        num_slices: ``'a3d'`` only: D, the depth the slice-fusion matrices act on.
        n_fold: ``'tsm'``, ``'alignshift'``: 1/n_fold of the channels shift each way.
        ref_thickness: ``'alignshift'``: the reference slice thickness (mm).
        zero_pad: ``'alignshift'``: a missing neighbour past the volume's ends is zero (False:
            the edge slice itself, the authors' default). TSM always pads with zero.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if mode in ('a3d', 'alignshift') and (pool_depth != 1 or conv_depth_stride != 1):
        raise ValueError(f"mode {mode!r} keeps depth: pool_depth and conv_depth_stride must be 1")
    if mode in ('tsm', 'alignshift') and n_fold < 2:
        raise ValueError(f'n_fold must be >= 2, got {n_fold}')
    shift_args = dict(n_fold=n_fold, ref_thickness=ref_thickness, zero_pad=zero_pad)
    if mode == 'a3d':
        if not num_slices or num_slices < 1:
            raise ValueError("mode 'a3d' needs num_slices, the depth D of the input")
    model = copy.deepcopy(model)

    def visit(module: nn.Module, prefix: str) -> nn.Module:
        new = convert_module(module, prefix or type(module).__name__, mode, pool_depth,
                             conv_depth_stride, inflate, num_slices, shift_args)
        if new is not None:
            return new
        for child_name, child in list(module.named_children()):
            setattr(module, child_name,
                    visit(child, f'{prefix}.{child_name}' if prefix else child_name))
        return module

    return visit(model, '')
