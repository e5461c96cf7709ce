"""Argument checks and shape arithmetic shared by acsdet's 3D convolutions (pure functions)."""
from typing import Optional, Sequence, Tuple, Union

PADDING_MODES = ('zeros', 'reflect', 'replicate', 'circular')
IntOr3 = Union[int, Sequence[int]]


def triple(value, name: str) -> Tuple[int, int, int]:
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
    return tuple((p, p) for p in triple(padding, 'padding'))


def conv_output_size(size: int, kernel_size: int, stride: int, pad: Tuple[int, int],
                     dilation: int) -> int:
    return (size + pad[0] + pad[1] - dilation * (kernel_size - 1) - 1) // stride + 1


def conv_output_sizes(in_size, kernel_size: int, stride, pads, dilation, padding) -> list:
    """The output size ``[D', H', W']`` of a (K, K, K) convolution over ``in_size``, as
    ``nn.Conv3d`` computes it; a ``ValueError`` (as ``nn.Conv3d`` raises) when one is below 1
    (``padding``: the argument as given, for the message)."""
    out = [
        conv_output_size(in_size[a], kernel_size, stride[a], pads[a], dilation[a]) for a in range(3)
    ]
    if min(out) < 1:
        raise ValueError(f'input size {tuple(in_size)} is too small for kernel size '
                         f'{kernel_size} with dilation {dilation}, padding {padding}: output size '
                         f'would be {out}')
    return out
