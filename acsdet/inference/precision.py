"""The arithmetic a detector runs in: ``'fp32'`` or ``'bf16'`` (bfloat16 autocast of the
backbone and neck, where almost all of the model's work is; the RPN and RoI heads, whose mmcv
RoIAlign and NMS take float32, get float32 features).

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
    """bfloat16 autocast on ``device`` for ``'bf16'``; a disabled one (nothing) for ``'fp32'``."""
    return torch.autocast(
        str(device).split(':')[0], dtype=torch.bfloat16, enabled=precision == 'bf16')


def as_float32(feats):
    """Features (a tensor, or a tuple / list of them) as float32."""
    if isinstance(feats, torch.Tensor):
        return feats.float()
    return type(feats)(f.float() for f in feats)


def run_features_in(model, precision: str, device: str) -> None:
    """Make ``model.extract_feat`` (backbone + neck of an MMDetection detector) run in
    ``precision`` and hand float32 features on to the heads."""
    if precision == 'fp32':
        return
    inner = model.extract_feat

    def extract_feat(batch_inputs):
        with autocast_to(precision, device):
            feats = inner(batch_inputs)
        return as_float32(feats)

    model.extract_feat = extract_feat
