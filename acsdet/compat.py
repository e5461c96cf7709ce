"""Compatibility shims for the pinned stack (torch >= 2.6 with mmengine 0.10.7).

mmengine 0.10.7 loads checkpoints with a bare ``torch.load``; since torch 2.6 that means
``weights_only=True``, and MMEngine's own checkpoints (a ``MessageHub`` holding
``HistoryBuffer`` objects with numpy arrays) fail to load: resume and ``tools/test.py`` break.
Rather than switching weights-only loading off, acsdet registers a local-file checkpoint loader
through MMEngine's public ``CheckpointLoader.register_scheme`` that always loads weights-only and
allow-lists exactly what MMEngine checkpoints contain, for the duration of that load only.

``HistoryBuffer`` pickles its statistics methods as ``getattr(HistoryBuffer, 'mean')``. A plain
``getattr`` in the allow-list would let a crafted checkpoint reach any attribute of any allowed
object (e.g. a function's ``__globals__``, then overwrite module globals), so ``builtins.getattr``
resolves to :func:`_history_buffer_getattr`, which answers only those method look-ups.
"""
import os.path as osp
import pickle

import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .utils.safe_pickle import numpy_globals

_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name):
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods (what its pickles use)."""
    allowed = set(_STATISTICS) | {
        n
        for n in HistoryBuffer._statistics_methods if not n.startswith('_')
    }
    if obj is not HistoryBuffer or not isinstance(name, str) or name not in allowed or not hasattr(
            HistoryBuffer, name):
        raise RuntimeError(f'checkpoint asks for getattr({obj!r}, {name!r}): only HistoryBuffer '
                           f'statistics methods {sorted(allowed)} may be looked up')
    return getattr(HistoryBuffer, name)


def mmengine_checkpoint_globals():
    """The non-tensor globals an MMEngine checkpoint pickles (message hub, numpy logs)."""
    numpy_objects = {id(o): o for o in numpy_globals().values()}  # one entry per object
    return [HistoryBuffer,
            (_history_buffer_getattr, 'builtins.getattr')] + list(numpy_objects.values())


def load_local_checkpoint(filename, map_location=None):
    """``torch.load(weights_only=True)`` of a local MMEngine checkpoint under a scoped
    allow-list. Errors name the file (missing, empty, not a checkpoint)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    if osp.getsize(filename) == 0:
        raise ValueError(f'checkpoint {filename} is an empty file')
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:
        raise RuntimeError(f'loading {filename}: acsdet loads MMEngine checkpoints weights-only, '
                           f'which needs torch >= 2.5 (installed: {torch.__version__})')
    with safe_globals(mmengine_checkpoint_globals()):
        try:
            return torch.load(filename, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:  # a global outside the allow-list
            raise pickle.UnpicklingError(f'{filename}: {e}') from e
        except Exception as e:  # torch raises many types for a file that is no checkpoint
            raise ValueError(f'{filename} is not a readable PyTorch checkpoint '
                             f'({type(e).__name__}: {e})') from e


def register_checkpoint_loader():
    """Route MMEngine's local (prefix '') checkpoint loads through
    :func:`load_local_checkpoint`."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
