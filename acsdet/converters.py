"""Convert a 2D PyTorch model into its 3D counterpart: ACS (and Mean-/Soft-ACS), 2.5D, 3D (I3D),
A3D, TSM or AlignShift.

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

GroupNorm, SyncBatchNorm, LayerNorm, activations, Dropout, Linear and containers are
dimension-free and kept. ``'a3d'`` is ``'2.5d'`` with a learned per-channel D x D slice fusion
before every convolution, 1 x 1 included (:class:`A3DConv`; needs ``num_slices``; depth must
stay D; a network turns it off where it wants none, as the truncated DenseNet's stem and
transitions).
``'mean-acs'`` and ``'soft-acs'`` are the ACS paper's variants (:class:`MeanACSConv`,
:class:`SoftACSConv`: every output channel over all three views; 2D weights kept, Soft-ACS's
``soft_w_core`` new; 1 x 1 convolutions as in ``'acs'``).
``'tsm'`` and ``'alignshift'`` are ``'2.5d'`` with a slice shift of 1/``n_fold`` of the channels
each way before every convolution (:class:`~acsdet.ops.shift.TSMConv`;
:class:`~acsdet.ops.shift.AlignShiftConv`, weighted by each sample's slice thickness, so depth
must stay as it is). Strided convolutions keep depth by default (``conv_depth_stride=1``, the
paper's detection setting); ``conv_depth_stride=None`` uses the 2D stride along depth too.
Anything else with 2D semantics raises :class:`ConversionError` naming the module. Only module
attributes are read (never ``Conv2d.__init__``'s argument names), so new torch versions do not
break it. Functional 2D calls inside a ``forward`` (``F.max_pool2d`` ...) cannot be seen by a
converter: replace them by modules.

Extending: the layer table and the modes are registries. ``@register_converter(nn.X)``
registers ``fn(module, name, opts) -> nn.Module`` for a layer type (looked up along the type's
MRO, so subclasses are covered); ``@register_conv_mode('name', options=MyOptions)`` adds a mode
by registering how a ``Conv2d`` becomes 3D in it, with its own options (a :class:`ModeOptions`
dataclass that checks itself; ``convert(model, 'name', **options)`` builds it) and whether it
keeps depth; ``transposed=True`` registers its ``ConvTranspose2d`` rule (without one, a mode's
transposed convolutions are the 2.5D ones). Neither needs an edit of :func:`convert`. An
unknown mode or option names the close ones (``'asc'``: did you mean ``'acs'``?).
"""
import copy
from dataclasses import dataclass, fields, replace
from typing import Callable, Dict, Optional, Tuple, Type

import torch
import torch.nn as nn

from .defaults import ALIGNSHIFT_REF_THICKNESS_MM, SHIFT_N_FOLD
from .ops import (A3DConv, ACSConv, ACSConvTranspose, Conv2_5d, ConvTranspose2_5d, MeanACSConv,
                  SoftACSConv)
from .ops.shift import AlignShiftConv, TSMConv
from .utils.lookup import close_names, look_up


class ConversionError(TypeError):
    """A module the converter cannot turn into a 3D counterpart."""


@dataclass(frozen=True)
class ModeOptions:
    """The options of a conversion mode (none here); a mode with options subclasses it and checks
    them in :meth:`check`."""

    def check(self, mode: str) -> None:
        """Raise ``ValueError`` naming the option if a value cannot work."""


@dataclass(frozen=True)
class I3DOptions(ModeOptions):
    """``'3d'``: ``inflate`` I3D-inflates the 2D kernels (repeat along depth, divide by K); False
    keeps ``nn.Conv3d``'s random initialisation."""
    inflate: bool = True


@dataclass(frozen=True)
class A3DOptions(ModeOptions):
    """``'a3d'``: ``num_slices`` is D, the depth the slice-fusion matrices act on."""
    num_slices: Optional[int] = None

    def check(self, mode: str) -> None:
        if not self.num_slices or self.num_slices < 1:
            raise ValueError(f"mode {mode!r} needs num_slices, the depth D of the input")


@dataclass(frozen=True)
class ShiftOptions(ModeOptions):
    """``'tsm'``: 1/``n_fold`` of the channels shift each way."""
    n_fold: int = SHIFT_N_FOLD

    def check(self, mode: str) -> None:
        if self.n_fold < 2:
            raise ValueError(f'n_fold must be >= 2, got {self.n_fold}')


@dataclass(frozen=True)
class AlignShiftOptions(ShiftOptions):
    """``'alignshift'``: as TSM, with the reference slice thickness (mm) and ``zero_pad`` (a
    missing neighbour past the volume's ends is zero; False: the edge slice itself, the
    authors' default)."""
    ref_thickness: float = ALIGNSHIFT_REF_THICKNESS_MM
    zero_pad: bool = False


@dataclass(frozen=True)
class ConvertOptions:
    """The arguments of :func:`convert`, handed to every registered converter: the depth
    handling common to all modes and the mode's own :class:`ModeOptions`."""
    mode: str
    pool_depth: int = 1
    conv_depth_stride: Optional[int] = 1
    mode_options: ModeOptions = ModeOptions()


LayerConverter = Callable[[nn.Module, str, ConvertOptions], nn.Module]


@dataclass(frozen=True)
class ConvMode:
    """A registered mode: how it converts a ``Conv2d`` (``conv``) and a ``ConvTranspose2d``
    (``transposed``; None: the 2.5D way), the options it takes, and whether it must keep depth
    D as it is (no depth pooling or depth stride)."""
    name: str
    conv: LayerConverter
    transposed: Optional[LayerConverter] = None
    options: Type[ModeOptions] = ModeOptions
    keeps_depth: bool = False


LAYER_CONVERTERS: Dict[type, LayerConverter] = {}
CONV_MODES: Dict[str, ConvMode] = {}


def register_converter(*layer_types: type):
    """Decorator: ``fn(module, name, opts)`` converts modules of ``layer_types`` (and their
    subclasses, unless one registers its own)."""

    def deco(fn: LayerConverter) -> LayerConverter:
        for t in layer_types:
            LAYER_CONVERTERS[t] = fn
        return fn

    return deco


def register_conv_mode(mode: str,
                       transposed: bool = False,
                       options: Type[ModeOptions] = ModeOptions,
                       keeps_depth: bool = False):
    """Decorator: ``fn(conv2d, name, opts)`` is how ``mode`` converts a ``Conv2d``; registering
    it adds the mode, with its ``options`` (a :class:`ModeOptions` dataclass: the keyword
    arguments :func:`convert` accepts for it, in ``opts.mode_options``) and ``keeps_depth``.
    With ``transposed=True`` it is how an already registered mode converts a
    ``ConvTranspose2d``."""

    def deco(fn: LayerConverter) -> LayerConverter:
        if transposed:
            CONV_MODES[mode] = replace(look_up(mode, CONV_MODES, 'conv mode'), transposed=fn)
        else:
            CONV_MODES[mode] = ConvMode(mode, fn, None, options, keeps_depth)
        return fn

    return deco


def mode_options(mode: str) -> Type[ModeOptions]:
    """The options dataclass of a registered ``mode`` (its fields and defaults)."""
    return look_up(mode, CONV_MODES, 'conv mode').options


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _copy_bias(src, dst):
    if src.bias is not None:
        with torch.no_grad():
            dst.bias.copy_(src.bias)


def _with_weight(new: nn.Module, src: nn.Module, weight: torch.Tensor) -> nn.Module:
    with torch.no_grad():
        new.weight.copy_(weight)
    _copy_bias(src, new)
    return new


@dataclass(frozen=True)
class _ConvGeometry:
    """A square 2D (transposed) convolution's K, its 3D stride, and its padding and dilation."""
    k: int
    stride: Tuple[int, int, int]
    padding: object  # (ph, pw) or 'same' / 'valid'
    dilation: Tuple[int, int]
    args: dict

    def layout(self, planar: bool) -> dict:
        """``stride``, ``padding``, ``dilation`` of a ``(1, K, K)`` kernel (``planar``) or of a
        ``(K, K, K)`` one (depth as height)."""
        p, (dh, dw) = self.padding, self.dilation
        if isinstance(p, str):
            pad = p
        else:
            pad = ((0, ) if planar else (p[0], )) + p
        return dict(stride=self.stride, padding=pad, dilation=(1 if planar else dh, dh, dw))


def _geometry(m: nn.Module, name: str, opts: ConvertOptions) -> _ConvGeometry:
    kh, kw = m.kernel_size
    if kh != kw:
        raise ConversionError(f'cannot convert {name} ({m}): {opts.mode} needs a square kernel')
    sh, sw = m.stride
    sd = sh if opts.conv_depth_stride is None else opts.conv_depth_stride
    padding = m.padding if isinstance(m.padding, str) else tuple(m.padding)
    return _ConvGeometry(kh, (sd, sh, sw), padding, tuple(m.dilation),
                         dict(groups=m.groups, bias=m.bias is not None))


def _build(cls, m: nn.Module, g: _ConvGeometry, planar: bool, **extra) -> nn.Module:
    """``cls(in, out, K, ...)`` with the planar or cubic layout of ``m``: its padding mode for a
    convolution, its output padding (none along depth unless depth is strided and the kernel
    cubic) for a transposed one."""
    kw = g.layout(planar)
    if isinstance(m, nn.ConvTranspose2d):
        oh, ow = m.output_padding
        kw['output_padding'] = (0 if planar or g.stride[0] == 1 else oh, oh, ow)
    else:
        kw['padding_mode'] = m.padding_mode
    return cls(m.in_channels, m.out_channels, g.k, **kw, **extra, **g.args)


def _planar(m: nn.Module, g: _ConvGeometry, cls=Conv2_5d, **extra) -> nn.Module:
    """A ``(1, K, K)`` convolution class with the 2D weight (``Conv2_5d`` and its kin)."""
    return _with_weight(_build(cls, m, g, True, **extra), m, m.weight)


def inflate_i3d(weight: torch.Tensor, k: int) -> torch.Tensor:
    """I3D inflation of a 2D kernel ``(Co, Ci, Kh, Kw)`` to ``(Co, Ci, k, Kh, Kw)``: repeated
    ``k`` times along depth and divided by ``k`` (a depth-constant input gives the 2D response).
    The one rule for converted layers and for loading 2D checkpoints into '3d' models."""
    return weight.unsqueeze(2).repeat(1, 1, k, 1, 1) / k


def _inflated(new: nn.Module, m: nn.Module, k: int, inflate: bool) -> nn.Module:
    """I3D (:func:`inflate_i3d`), or without ``inflate`` the 3D layer's own random
    initialisation."""
    if not inflate:
        return new
    return _with_weight(new, m, inflate_i3d(m.weight, k))


@register_converter(nn.Conv2d)
def _convert_conv(m: nn.Conv2d, name: str, opts: ConvertOptions) -> nn.Module:
    return CONV_MODES[opts.mode].conv(m, name, opts)


@register_conv_mode('acs')
def _conv_acs(m, name, opts):
    g = _geometry(m, name, opts)
    if g.k == 1:  # 1x1: the 1x1x1 Conv3d in the 2D weight layout
        return _planar(m, g)
    return _with_weight(_build(ACSConv, m, g, False), m, m.weight)


@register_conv_mode('mean-acs')
def _conv_mean_acs(m, name, opts):
    g = _geometry(m, name, opts)
    if g.k == 1:  # 1x1: the three views are one and the same 1x1x1 convolution
        return _planar(m, g)
    return _with_weight(_build(MeanACSConv, m, g, False), m, m.weight)


@register_conv_mode('soft-acs')
def _conv_soft_acs(m, name, opts):
    g = _geometry(m, name, opts)
    if g.k == 1:
        return _planar(m, g)
    return _with_weight(_build(SoftACSConv, m, g, False), m, m.weight)


@register_conv_mode('2.5d')
def _conv_2_5d(m, name, opts):
    return _planar(m, _geometry(m, name, opts))


@register_conv_mode('3d', options=I3DOptions)
def _conv_3d(m, name, opts):
    g = _geometry(m, name, opts)
    if g.k == 1:
        return _with_weight(_build(nn.Conv3d, m, g, True), m, m.weight.unsqueeze(2))
    return _inflated(_build(nn.Conv3d, m, g, False), m, g.k, opts.mode_options.inflate)


@register_conv_mode('a3d', options=A3DOptions, keeps_depth=True)
def _conv_a3d(m, name, opts):  # every convolution, 1 x 1 included (the authors' dense layers)
    return _planar(m, _geometry(m, name, opts), A3DConv, num_slices=opts.mode_options.num_slices)


@register_conv_mode('tsm', options=ShiftOptions)
def _conv_tsm(m, name, opts):  # every convolution, 1 x 1 included (the authors' layers)
    return _planar(m, _geometry(m, name, opts), TSMConv, n_fold=opts.mode_options.n_fold)


@register_conv_mode('alignshift', options=AlignShiftOptions, keeps_depth=True)
def _conv_alignshift(m, name, opts):
    o = opts.mode_options
    return _planar(
        m,
        _geometry(m, name, opts),
        AlignShiftConv,
        n_fold=o.n_fold,
        ref_thickness=o.ref_thickness,
        zero_pad=o.zero_pad)


@register_converter(nn.ConvTranspose2d)
def _convert_conv_transpose(m: nn.ConvTranspose2d, name: str, opts: ConvertOptions) -> nn.Module:
    return (CONV_MODES[opts.mode].transposed or _transpose_2_5d)(m, name, opts)


def _transpose_2_5d(m, name, opts):
    return _planar(m, _geometry(m, name, opts), ConvTranspose2_5d)


@register_conv_mode('acs', transposed=True)
def _transpose_acs(m, name, opts):
    return _with_weight(_build(ACSConvTranspose, m, _geometry(m, name, opts), False), m, m.weight)


@register_conv_mode('3d', transposed=True)
def _transpose_3d(m, name, opts):
    g = _geometry(m, name, opts)
    return _inflated(_build(nn.ConvTranspose3d, m, g, False), m, g.k, opts.mode_options.inflate)


@register_converter(nn.BatchNorm2d, nn.InstanceNorm2d)
def _convert_norm(m, name, opts):
    cls = nn.BatchNorm3d if isinstance(m, nn.BatchNorm2d) else nn.InstanceNorm3d
    new = cls(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
    new.load_state_dict(m.state_dict())
    new.train(m.training)
    return new


@register_converter(nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)
def _convert_adaptive_pool(m, name, opts):
    oh, ow = _pair(m.output_size)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool3d((oh, oh, ow))
    return nn.AdaptiveMaxPool3d((oh, oh, ow), m.return_indices)


@register_converter(nn.MaxPool2d, nn.AvgPool2d)
def _convert_pool(m, name, opts):
    pool_depth = opts.pool_depth
    (kh, kw), (sh, sw), (ph, pw) = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
    pd = ph if pool_depth == kh else 0
    kernel, stride, padding = (pool_depth, kh, kw), (pool_depth, sh, sw), (pd, ph, pw)
    if isinstance(m, nn.MaxPool2d):
        dh, dw = _pair(m.dilation)
        return nn.MaxPool3d(kernel, stride, padding, (1, dh, dw), m.return_indices, m.ceil_mode)
    return nn.AvgPool3d(kernel, stride, padding, m.ceil_mode, m.count_include_pad,
                        m.divisor_override)


@register_converter(nn.Upsample)
def _convert_upsample(m: nn.Upsample, name, opts):
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


@register_converter(nn.Dropout2d)
def _convert_dropout(m, name, opts):
    return nn.Dropout3d(m.p, m.inplace)


# Leaf modules that are correct on 5D input as they are, and layers that are already 3D.
@register_converter(nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
                    nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Softmax,
                    nn.Identity, nn.Dropout, nn.AlphaDropout, nn.Linear, nn.Flatten, nn.GroupNorm,
                    nn.LayerNorm, nn.SyncBatchNorm, A3DConv, ACSConv, ACSConvTranspose, Conv2_5d,
                    nn.Conv3d, nn.ConvTranspose3d, nn.BatchNorm3d, nn.InstanceNorm3d, nn.MaxPool3d,
                    nn.AvgPool3d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d, nn.Dropout3d)
def _keep(m, name, opts):
    return m


def convert_module(m: nn.Module, name: str, opts: ConvertOptions) -> Optional[nn.Module]:
    """The 3D counterpart of one module (by the registered converter of the first of its types,
    along the MRO, that has one), or None if it has children to convert one by one."""
    for t in type(m).__mro__:
        fn = LAYER_CONVERTERS.get(t)
        if fn is not None:
            return fn(m, name, opts)
    if next(m.children(), None) is not None:
        return None
    if type(m).__name__.lower().endswith('2d') or any(p.dim() == 4 for p in m.parameters(False)):
        raise ConversionError(f'cannot convert {name} ({type(m).__name__}) to {opts.mode}: no 3D '
                              'counterpart is known; register a converter for it '
                              '(register_converter) or replace it')
    return m  # a parameter-free leaf without 2D semantics (e.g. a custom activation)


def build_mode_options(mode: str, options: dict) -> ModeOptions:
    """``mode``'s options dataclass from keyword ``options``, checked; an option it does not
    take is a ``ValueError`` naming the ones it does (and the close one)."""
    cls = mode_options(mode)
    known = [f.name for f in fields(cls)]
    for key in options:
        if key not in known:
            close = close_names(key, known)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ''
            raise ValueError(f'conv mode {mode!r} takes no option {key!r} (its options: '
                             f'{", ".join(known) or "none"}){hint}')
    built = cls(**options)
    built.check(mode)
    return built


def modes() -> Tuple[str, ...]:
    """The registered modes."""
    return tuple(CONV_MODES)


MODES = modes()  # the built-in ones


def convert(model: nn.Module,
            mode: str,
            *,
            pool_depth: int = 1,
            conv_depth_stride: Optional[int] = 1,
            **options) -> nn.Module:
    """A 3D copy of the 2D ``model`` for ``mode`` in :func:`modes` (built in: :data:`MODES`).

    Args:
        pool_depth: kernel and stride of pooling along depth (1 keeps depth, as the paper's
            detector; 2 halves it, as 3D classification networks do).
        conv_depth_stride: depth stride of strided convolutions; None uses the 2D stride.
        options: the mode's own (its :func:`mode_options` dataclass): ``'3d'``: ``inflate``;
            ``'a3d'``: ``num_slices``; ``'tsm'``: ``n_fold``; ``'alignshift'``: ``n_fold``,
            ``ref_thickness``, ``zero_pad`` (see :class:`I3DOptions`, :class:`A3DOptions`,
            :class:`ShiftOptions`, :class:`AlignShiftOptions`). An option the mode does not
            take is a ``ValueError`` naming the ones it does.
    """
    spec = look_up(mode, CONV_MODES, 'conv mode')
    if spec.keeps_depth and (pool_depth != 1 or conv_depth_stride != 1):
        raise ValueError(f"mode {mode!r} keeps depth: pool_depth and conv_depth_stride must be 1")
    opts = ConvertOptions(mode, pool_depth, conv_depth_stride, build_mode_options(mode, options))
    model = copy.deepcopy(model)

    def visit(module: nn.Module, prefix: str) -> nn.Module:
        new = convert_module(module, prefix or type(module).__name__, opts)
        if new is not None:
            return new
        for child_name, child in list(module.named_children()):
            setattr(module, child_name,
                    visit(child, f'{prefix}.{child_name}' if prefix else child_name))
        return module

    return visit(model, '')
