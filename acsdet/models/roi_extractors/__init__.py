"""RoI extractors registered into ``mmdet.registry.MODELS``."""
from .mmdet_v1_roi_extractor import MMDetV1RoIExtractor

__all__ = ['MMDetV1RoIExtractor']
