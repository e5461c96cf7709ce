"""Runner glue: hooks registered into ``mmdet.registry.HOOKS`` and command-line helpers."""
from .hooks import DeepLesionVisualizationHook, ProgressBarHook

__all__ = ['DeepLesionVisualizationHook', 'ProgressBarHook']
