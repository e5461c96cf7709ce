"""Task utilities registered into ``mmdet.registry.TASK_UTILS``."""
from .mmdet_v1_coder import MMDetV1DeltaXYWHBBoxCoder, mmdet_v1_delta2bbox

__all__ = ['MMDetV1DeltaXYWHBBoxCoder', 'mmdet_v1_delta2bbox']
