"""DeepLesion evaluation: the official FROC protocol (pure numpy) and its MMEngine metric."""
from .dump_results import AcsdetDumpDetResults
from .froc import (DEFAULT_FPS, FROCResult, compute_froc, compute_froc_by_group, froc_curve,
                   iou_plus1, sensitivity_at, size_bucket, thickness_bucket)
from .froc_metric import FROCMetric, plot_froc

__all__ = [
    'AcsdetDumpDetResults', 'FROCMetric', 'plot_froc', 'DEFAULT_FPS', 'FROCResult', 'compute_froc',
    'compute_froc_by_group', 'froc_curve', 'iou_plus1', 'sensitivity_at', 'size_bucket',
    'thickness_bucket'
]
