"""DeepLesion evaluation: the official FROC protocol (pure numpy) and its MMEngine metric."""
from .froc import (DEFAULT_FPS, FROCResult, compute_froc, compute_froc_by_group, froc_curve,
                   iou_plus1, sensitivity_at, size_bucket, thickness_bucket)

__all__ = ['DEFAULT_FPS', 'FROCResult', 'compute_froc', 'compute_froc_by_group', 'froc_curve',
           'iou_plus1', 'sensitivity_at', 'size_bucket', 'thickness_bucket']
