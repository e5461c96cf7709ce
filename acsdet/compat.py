"""Compatibility shims for the pinned stack (torch >= 2.6 with mmengine 0.10.7).

mmengine 0.10.7 loads checkpoints with a bare ``torch.load``; since torch 2.6 that means
``weights_only=True``, and MMEngine's own checkpoints (a ``MessageHub`` holding
``HistoryBuffer`` objects with numpy arrays) fail to load: resume and ``tools/test.py`` break.
Rather than switching weights-only loading off for the whole process, acsdet registers a local-file
checkpoint loader through MMEngine's public ``CheckpointLoader.register_scheme`` that allow-lists
exactly what MMEngine checkpoints contain, for the duration of that load only.
"""
import os.path as osp

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

_np_multiarray = getattr(np, '_core', None) or np.core  # numpy 2 renamed np.core
_np_multiarray = _np_multiarray.multiarray


def mmengine_checkpoint_globals():
    """The non-tensor globals an MMEngine checkpoint pickles (message hub, numpy logs)."""
    safe = [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        _np_multiarray._reconstruct,
        _np_multiarray.scalar,
        # HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, name)
        getattr
    ]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25 pickles dtype classes
    if dtypes is not None:
        safe += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return safe


def load_local_checkpoint(filename, map_location=None):
    """``torch.load`` of a local MMEngine checkpoint under a scoped weights-only allow-list."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:  # torch < 2.5 has no weights-only default to work around
        return torch.load(filename, map_location=map_location)
    with safe_globals(mmengine_checkpoint_globals()):
        return torch.load(filename, map_location=map_location)


def register_checkpoint_loader():
    """Route local (prefix '') checkpoint loads of MMEngine through :func:`load_local_checkpoint`."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
