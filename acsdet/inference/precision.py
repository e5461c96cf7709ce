"""The arithmetic a detector runs in: ``'fp32'`` or ``'bf16'``: bfloat16 autocast of the layers
that hold the work (backbone, neck, the RPN's 3 x 3 convolution, the RoI heads' shared layers and
mask convolutions); float32 for the small layers that make scores and box deltas (the RPN's
objectness and deltas, which rank thousands of near-equal proposals, the box head's classifier and
regressor, the mask logits) and for everything between the layers (the features handed to the
heads, RoIAlign, box decoding, NMS, mask pasting).

bfloat16 needs hardware that computes it natively: on CPU the AVX512-BF16 or AMX instructions
(``torch.cpu._is_avx512_bf16_supported``), on CUDA ``torch.cuda.is_bf16_supported``. Elsewhere
PyTorch emulates it, slower than float32, so :func:`resolve_precision` says so and runs float32.
"""
import warnings
from typing import Tuple

import torch

PRECISIONS = ('fp32', 'bf16')


def bf16_supported(device: str) -> Tuple[bool, str]:
    """``(native bfloat16 on ``device``, why not)``."""
    if str(device).startswith('cuda'):
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, '' if ok else 'this GPU has no native bfloat16'
    check = getattr(torch.cpu, '_is_avx512_bf16_supported', None)
    amx = getattr(torch.cpu, '_is_amx_tile_supported', None)
    ok = bool((check and check()) or (amx and amx()))
    return ok, '' if ok else 'this CPU has neither AVX512-BF16 nor AMX (bfloat16 is emulated)'


def resolve_precision(precision: str, device: str) -> str:
    """The precision that runs: ``precision``, or ``'fp32'`` with a warning where bfloat16 is
    not native. An unknown name is a ``ValueError``."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    if precision == 'bf16':
        ok, why = bf16_supported(device)
        if not ok:
            warnings.warn(f'precision bf16: {why}, slower than float32 there: running fp32')
            return 'fp32'
    return precision


def autocast_to(precision: str, device: str) -> torch.autocast:
    """bfloat16 autocast on ``device`` for ``'bf16'``; for ``'fp32'`` a disabled one (float32
    inside an enclosing autocast too)."""
    return torch.autocast(
        str(device).split(':')[0], dtype=torch.bfloat16, enabled=precision == 'bf16')


def as_float32(out):
    """A tensor, or the tensors in (nested) tuples / lists, as float32 (other values kept)."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(as_float32(o) for o in out)
    return out


#: The layers of MMDetection's RPN, box and mask heads that make scores and box deltas.
OUTPUT_LAYERS = ('rpn_cls', 'rpn_reg', 'fc_cls', 'fc_reg', 'conv_logits')


def _run_in(owner, name: str, precision: str, device: str) -> None:
    """``owner.<name>(...)`` under ``precision``'s autocast (``'fp32'``: on float32 inputs), its
    outputs handed on as float32."""
    inner = getattr(owner, name)

    def call(*args, **kwargs):
        if precision == 'fp32':
            args = as_float32(args)
        with autocast_to(precision, device):
            out = inner(*args, **kwargs)
        return as_float32(out)

    setattr(owner, name, call)


#: The layers of the heads whose weights ``'bf16'`` holds in bfloat16: autocast would cast them
#: again at every call (the box head's 25088 x 2048 FC: 103 MB written a call), to the same
#: values, and only their own forward reads them.
HELD_IN_BF16 = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def hold_weights_in_bf16(head) -> int:
    """Store the :data:`HELD_IN_BF16` layers of ``head`` (not its :data:`OUTPUT_LAYERS`) in
    bfloat16, as autocast would cast them: the same outputs under autocast; the number
    changed."""
    keep = {id(getattr(head, name)) for name in OUTPUT_LAYERS if hasattr(head, name)}
    changed = 0
    for m in head.modules():
        if type(m) in HELD_IN_BF16 and id(m) not in keep:
            m.to(torch.bfloat16)
            changed += 1
    return changed


def run_layers_in(model, precision: str, device: str) -> None:
    """Make an MMDetection detector's layers run in ``precision``: ``extract_feat`` (backbone +
    neck) and the ``forward`` of its RPN head and of its RoI heads' box and mask heads, each
    handing float32 on (to RoIAlign, decoding and NMS, which take it), their
    :data:`OUTPUT_LAYERS` in float32 and their other weights held in bfloat16
    (:func:`hold_weights_in_bf16`)."""
    if precision == 'fp32':
        return
    _run_in(model, 'extract_feat', precision, device)
    roi = getattr(model, 'roi_head', None)
    heads = [getattr(model, 'rpn_head', None)
             ] + [getattr(roi, name, None) for name in ('bbox_head', 'mask_head')]
    for head in heads:
        if head is None:
            continue
        _run_in(head, 'forward', precision, device)
        hold_weights_in_bf16(head)
        for name in OUTPUT_LAYERS:
            if isinstance(getattr(head, name, None), torch.nn.Module):
                _run_in(getattr(head, name), 'forward', 'fp32', device)
