"""Detectors registered into ``mmdet.registry.MODELS``."""
from .thickness_aware import ThicknessAwareMaskRCNN, sample_thickness

__all__ = ['ThicknessAwareMaskRCNN', 'sample_thickness']
