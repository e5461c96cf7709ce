"""Importing this module registers every acsdet module into ``mmdet.registry`` (models, datasets,
transforms, hooks, metrics, the visualiser) and routes MMEngine's local checkpoint loads through
acsdet's weights-only loader (:func:`acsdet.compat.register_checkpoint_loader`). Configs:
``custom_imports=dict(imports=['acsdet.all_modules'])``."""
from .compat import register_checkpoint_loader

register_checkpoint_loader()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401
from .evaluation import dump_results, froc_metric  # noqa: E402,F401

__all__ = []
