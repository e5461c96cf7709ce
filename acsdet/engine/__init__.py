"""Runner glue: hooks registered into ``mmdet.registry.HOOKS`` and command-line helpers."""
from .hooks import ArchitectureRecordHook, DeepLesionVisualizationHook, ProgressBarHook

__all__ = ['ArchitectureRecordHook', 'DeepLesionVisualizationHook', 'ProgressBarHook']
