"""Loading result pickles without running code from them.

``pickle.load`` executes whatever callable a file names, so a results file from someone else can
run anything. :func:`load_results_pickle` resolves only the globals that MMDetection's dumped
results (``tools/test.py --out``, ``DumpDetResults``) contain: torch tensors (their storage loaded
through ``torch.load(..., weights_only=True)``), numpy arrays and scalars, plain containers and
bytes (protocol 2 stores them as ``_codecs.encode(text, 'latin1')``).
Anything else is refused with an error naming the file and the global.
"""
import collections
import io
import pickle

import numpy as np
import torch

_np_core = getattr(np, '_core', None) or np.core  # numpy 2 renamed np.core


def _storage_from_bytes(b: bytes):
    """``torch.storage._load_from_bytes`` with weights-only loading (the original unpickles
    the bytes with ``weights_only=False``)."""
    try:
        return torch.load(io.BytesIO(b), weights_only=True)
    except Exception as e:  # torch raises many types (struct.error too) for bytes it cannot read
        raise pickle.UnpicklingError(f'a tensor storage that is not a weights-only torch file '
                                     f'({type(e).__name__}: {e})') from None


def _latin1_encode(text: str, encoding: str = 'latin1') -> bytes:
    """``_codecs.encode`` as pickle protocol 2 uses it for ``bytes``: latin-1 only."""
    if encoding not in ('latin1', 'latin-1') or not isinstance(text, str):
        raise pickle.UnpicklingError(f'_codecs.encode with {encoding!r} is not how pickle '
                                     'stores bytes')
    return text.encode('latin1')


def numpy_globals() -> dict:
    """``{(module, name): object}`` of what pickled numpy arrays, scalars and dtypes name (both
    numpy 1 and 2 module paths): the numpy part of every allow-list in acsdet (results pickles
    here, MMEngine checkpoints in :mod:`acsdet.compat`)."""
    out = {('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype}
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        out[(mod, '_reconstruct')] = _np_core.multiarray._reconstruct
        out[(mod, 'scalar')] = _np_core.multiarray.scalar
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25 pickles dtype classes
    if dtypes is not None:
        for n in dir(dtypes):
            if n.endswith('DType'):
                out[('numpy.dtypes', n)] = getattr(dtypes, n)
    return out


def _allowed() -> dict:
    allowed = {
        ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
        ('torch.storage', '_load_from_bytes'): _storage_from_bytes,
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('_codecs', 'encode'): _latin1_encode,  # bytes in protocol 2 (mmengine's dump)
    }
    allowed.update(numpy_globals())
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):

    def __init__(self, f, path: str):
        super().__init__(f)
        self.path, self.allowed = path, _allowed()

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f'{self.path}: refusing to load {module}.{name}: a results pickle holds only '
                'tensors, numpy arrays and plain containers (anything else could run code)'
            ) from None


def load_results_pickle(path: str):
    """The object in a results pickle, with only the globals listed above resolvable."""
    with open(path, 'rb') as f:
        try:
            return _RestrictedUnpickler(f, path).load()
        except pickle.UnpicklingError as e:  # refusals from inside (bytes, tensor storages) too
            if str(e).startswith(f'{path}:'):
                raise
            raise pickle.UnpicklingError(f'{path}: refused: {e}') from None
        except (EOFError, ValueError, TypeError, AttributeError, RuntimeError) as e:
            raise pickle.UnpicklingError(f'{path}: not a readable results pickle ({e})') from None
