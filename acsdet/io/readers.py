"""The CT reader interface and its registry (as MONAI's ``ImageReader``).

A reader is one registered class: :meth:`CTReader.accepts` says whether it reads a path (cheaply:
names, a folder listing, a file's first bytes), :meth:`CTReader.read` returns a
:class:`~acsdet.io.ct_volume.CTVolume` (DeepLesion's slice order, validated). A reader declares the
keyword ``options`` it takes (``read_ct`` hands it only those, so one set of options serves a
mixed batch of inputs) and the file name ``extensions`` it owns (stripped from case names).
:func:`~acsdet.io.read_ct` asks the readers in ``priority`` order (lowest first) and uses the
first that accepts the path, or the one named with ``reader=``.

Adding a format is one class::

    @register_ct_reader
    class MyReader(CTReader):
        name, extensions, options = 'my-format', ('.my', ), ('window', )
        def accepts(self, path): return path.endswith('.my')
        def read(self, path, window=None): ...
"""
import os.path as osp
from typing import Dict, Iterator, Tuple, Type

from ..utils.lookup import look_up
from .ct_volume import CTVolume


class CTReader:
    """One CT format (subclass and register with :func:`register_ct_reader`)."""
    #: The name ``read_ct(path, reader=NAME)`` picks it by.
    name: str = ''
    #: What the format is, for messages ("a DICOM folder", ...).
    description: str = ''
    #: File name endings it owns (lower case; stripped from case names).
    extensions: Tuple[str, ...] = ()
    #: The keyword options :meth:`read` takes.
    options: Tuple[str, ...] = ()
    #: Lower is asked first.
    priority: int = 50
    #: Whether it reads DICOM (so DICOM SEG / SR outputs can reference the source).
    is_dicom: bool = False

    def accepts(self, path: str) -> bool:
        """Whether this reader reads ``path`` (an existing file or folder)."""
        raise NotImplementedError

    def read(self, path: str, **options) -> CTVolume:
        """``path`` as a :class:`CTVolume`; raises :class:`~acsdet.io.ct_volume.CTReadError`."""
        raise NotImplementedError


CT_READERS: Dict[str, CTReader] = {}


def register_ct_reader(cls: Type[CTReader]) -> Type[CTReader]:
    """Class decorator: register (an instance of) a :class:`CTReader` under its ``name``."""
    if not cls.name:
        raise ValueError(f'{cls.__name__}: a CT reader needs a name')
    CT_READERS[cls.name] = cls()
    return cls


def readers() -> Iterator[CTReader]:
    """The registered readers in the order :func:`~acsdet.io.read_ct` asks them."""
    return iter(sorted(CT_READERS.values(), key=lambda r: r.priority))


def get_reader(name: str) -> CTReader:
    """The reader registered as ``name`` (an unknown name suggests the close ones)."""
    return look_up(name, CT_READERS, 'CT reader')


def file_extension(path: str) -> str:
    """The longest registered extension ``path`` ends with ('' if none)."""
    low = path.lower()
    exts = sorted({e for r in CT_READERS.values() for e in r.extensions}, key=len, reverse=True)
    return next((e for e in exts if low.endswith(e)), '')


def case_name(path: str) -> str:
    """The base name of an input, without its image extension: the case folder's name (``.``
    and ``..`` are named by the folder they are)."""
    base = osp.basename(osp.normpath(path))
    if base in ('.', '..', ''):
        base = osp.basename(osp.realpath(path)) or 'root'
    ext = file_extension(base)
    return base[:-len(ext)] if ext else base
