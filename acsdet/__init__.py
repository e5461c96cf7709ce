"""acsdet: ACS convolutions and universal lesion detection in CT on MMDetection 3.x.

Importing the package registers its models, datasets, transforms and metrics into
``mmdet.registry`` (configs do it with ``custom_imports=dict(imports=['acsdet'])``) and installs
the compatibility shims of :mod:`acsdet.compat`.
"""
from .compat import register_checkpoint_loader
from .version import __version__

register_checkpoint_loader()

# registers into mmdet.registry
from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401

__all__ = ['__version__']
