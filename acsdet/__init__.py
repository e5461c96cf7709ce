"""acsdet: ACS convolutions and universal lesion detection in CT on MMDetection 3.x.

``import acsdet`` is light (no torch): the ``acsdet`` command starts from it. Registering acsdet's
models, datasets, transforms, hooks and metrics into ``mmdet.registry`` (and installing the
checkpoint loader of :mod:`acsdet.compat`) is :mod:`acsdet.all_modules`: configs import it with
``custom_imports=dict(imports=['acsdet.all_modules'])``, code calls
:func:`register_all_modules`, as MMDetection's ``register_all_modules``. Subpackages load on
first use (``acsdet.models``, ...).
"""
import importlib

from .version import __version__

_SUBPACKAGES = ('all_modules', 'apis', 'cli', 'compat', 'converters', 'datasets', 'deeplesion',
                'defaults', 'engine', 'evaluation', 'export', 'inference', 'io', 'models', 'ops',
                'preparation', 'testing', 'utils', 'visualization')


def register_all_modules() -> None:
    """Register acsdet's modules into ``mmdet.registry`` and install its checkpoint loader
    (idempotent): what ``custom_imports=dict(imports=['acsdet.all_modules'])`` does."""
    importlib.import_module('acsdet.all_modules')


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = ['__version__', 'register_all_modules']
