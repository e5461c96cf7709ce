"""Pipeline transforms registered into ``mmdet.registry.TRANSFORMS``."""
from .augment import RandomShiftScaleRotate, SpacingResize, warp_channels
from .loading import HUWindowNormalize, LoadDeepLesionSlices

__all__ = [
    'LoadDeepLesionSlices', 'HUWindowNormalize', 'RandomShiftScaleRotate', 'SpacingResize',
    'warp_channels'
]
