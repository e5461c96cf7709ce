"""Pipeline transforms registered into ``mmdet.registry.TRANSFORMS``."""
from .augment import RandomShiftScaleRotate, SpacingResize, warp_channels
from .loading import HUWindowNormalize, LoadDeepLesionSlices, LoadVolumeSlices

__all__ = [
    'LoadDeepLesionSlices', 'LoadVolumeSlices', 'HUWindowNormalize', 'RandomShiftScaleRotate',
    'SpacingResize', 'warp_channels'
]
