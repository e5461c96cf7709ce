"""DeepLesion evaluation: the official FROC protocol (pure numpy) and its MMEngine metric (loaded
on first use, so that the protocol imports without MMEngine)."""
import importlib

from .froc import (DEFAULT_FPS, FROCResult, compute_froc, compute_froc_by_group, froc_curve,
                   iou_plus1, sensitivity_at, size_bucket, thickness_bucket)

_LAZY = dict(AcsdetDumpDetResults='dump_results', FROCMetric='froc_metric', plot_froc='froc_metric')


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f'{__name__}.{_LAZY[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = [
    'AcsdetDumpDetResults', 'FROCMetric', 'plot_froc', 'DEFAULT_FPS', 'FROCResult', 'compute_froc',
    'compute_froc_by_group', 'froc_curve', 'iou_plus1', 'sensitivity_at', 'size_bucket',
    'thickness_bucket'
]
