"""The files one run of an acsdet tool writes outside case folders (converted volumes, evaluation
results, prediction dumps), and the rules that keep them from destroying anything:

- a run never writes over one of its own inputs (the same path, a link to it or a hard link);
- it never writes over a file acsdet did not write: each folder it writes into keeps the ledger
  :data:`LEDGER` (file name, the tool, the input key, size and modification time of what it
  wrote); an existing file that is not in it, or has changed since, is refused with an error
  naming it;
- two outputs of one run get two names: the plain name belongs to the input that wrote it first
  (in this run or, by the ledger, an earlier one), another input's output of that name becomes
  ``<stem>-<8 hex of its input key><extension>``, as case folders are named
  (:func:`acsdet.export.case_folder.assign_case_names`).

Every file is written atomically (:func:`~acsdet.utils.files.atomic_save`); the ledger is updated
under a lock, so concurrent runs into one folder keep each other's entries. Case folders carry
their own manifest and are not in a ledger (:mod:`acsdet.export.case_folder`).
"""
import json
import os
import os.path as osp
from typing import IO, Callable, Dict, Iterable, Optional

from .files import atomic_save, atomic_write, folder_lock, hashed_name

#: The ledger of the files acsdet wrote in a folder.
LEDGER = '.acsdet-files.json'


class OutputRefused(OSError):
    """An output acsdet will not write (an input of the run, a file it did not write, a name
    another output of the run has); the message names the file and what to do."""


def _ledger(folder: str) -> Dict[str, dict]:
    try:
        with open(osp.join(folder, LEDGER)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    files = doc.get('files') if isinstance(doc, dict) else None
    return files if isinstance(files, dict) else {}


def _stamp(path: str) -> dict:
    st = os.stat(path)
    return dict(size=st.st_size, mtime_ns=st.st_mtime_ns)


def _split_ext(name: str):
    for ext in ('.nii.gz', '.tar.gz'):
        if name.lower().endswith(ext):
            return name[:-len(ext)], name[-len(ext):]
    return osp.splitext(name)


class RunOutputs:
    """The outputs of one run of ``tool``.

    Args:
        tool: the writing tool's name (recorded in the ledger).
        inputs: the run's input files and folders (more with :meth:`add_inputs`).
    """

    def __init__(self, tool: str, inputs: Iterable[str] = ()):
        self.tool = tool
        self.inputs = []
        self.claimed: Dict[str, Optional[str]] = {}  # real path -> input key
        self.add_inputs(inputs)

    def add_inputs(self, paths: Iterable[str]) -> None:
        self.inputs += [p for p in paths if p and osp.exists(p)]

    def _is_input(self, path: str) -> Optional[str]:
        """The input ``path`` is (the same file or folder: by path, link or hard link), or None."""
        if not osp.exists(path):
            return None
        for inp in self.inputs:
            try:
                if osp.samefile(inp, path):
                    return inp
            except OSError:  # gone since
                pass
        return None

    @staticmethod
    def _hashed(path: str, key: str) -> str:
        stem, ext = _split_ext(osp.basename(path))
        return osp.join(osp.dirname(path), hashed_name(stem, key) + ext)

    def _taken(self, path: str, key: Optional[str], entry: Optional[dict]) -> bool:
        real = osp.realpath(path)
        if real in self.claimed:
            return self.claimed[real] != key
        # an earlier run wrote another input's output under this name
        return key is not None and entry is not None and entry.get('input') not in (None, key)

    def claim(self, path: str, key: Optional[str] = None) -> str:
        """The path to write the output ``path`` of input ``key`` to (``path``, or its hashed
        name when another input of this run or of an earlier one has it); :class:`OutputRefused`
        when it may not be written. Call it before the work, so a refusal costs nothing."""
        for candidate in [path] + ([self._hashed(path, key)] if key is not None else []):
            folder, name = osp.split(osp.realpath(candidate))
            entry = _ledger(folder).get(name)
            if not self._taken(candidate, key, entry):
                break
        else:
            raise OutputRefused(f'{path}: another output of this run has this name')
        path = candidate
        inp = self._is_input(path)
        if inp is not None:
            raise OutputRefused(f'{path} is an input of this run ({inp}): refusing to write over '
                                'it; choose another output path')
        if osp.lexists(path):
            self._check_ours(path, entry)
        self.claimed[osp.realpath(path)] = key
        return path

    def _check_ours(self, path: str, entry: Optional[dict]) -> None:
        if osp.isdir(path) and not osp.islink(path):
            raise OutputRefused(f'{path} is a folder: refusing to replace it with a file')
        try:
            same = entry is not None and not osp.islink(path) and all(
                entry.get(k) == v for k, v in _stamp(path).items())
        except OSError:
            same = False
        if not same:
            why = (f'acsdet did not write it (no entry in {LEDGER})'
                   if entry is None else f'it changed since acsdet wrote it ({LEDGER})')
            raise OutputRefused(f'{path} exists and {why}: refusing to replace it; move it or '
                                'choose another output path')

    def save(self,
             path: str,
             save: Callable[[str], None],
             extension: str = '',
             key: Optional[str] = None) -> str:
        """Write ``path`` (claimed here if it was not) by ``save(tmp)`` (a writer by file name)
        atomically and record it in its folder's ledger. Returns the path written."""
        return self._written(path, key, lambda p: atomic_save(p, save, extension))

    def write(self, path: str, write: Callable[[IO], None], key: Optional[str] = None, **kw) -> str:
        """:meth:`save` of a file written through ``write(f)`` on an open file (keywords of
        :func:`~acsdet.utils.files.atomic_write`)."""
        return self._written(path, key, lambda p: atomic_write(p, write, **kw))

    def _written(self, path: str, key: Optional[str], do: Callable[[str], None]) -> str:
        if osp.realpath(path) not in self.claimed:
            path = self.claim(path, key)
        os.makedirs(osp.dirname(osp.realpath(path)), exist_ok=True)
        do(path)
        record_written(path, self.tool, key)
        return path


def record_written(path: str, tool: str, key: Optional[str] = None) -> None:
    """Record the file ``path`` as written by ``tool`` for input ``key`` in its folder's ledger
    (under the folder's lock); also for a file a library writer made at a claimed path (the
    COCO set of :func:`~acsdet.utils.files.atomic_write_set`)."""
    folder, name = osp.split(osp.realpath(path))
    with folder_lock(folder):
        files = _ledger(folder)
        files[name] = dict(tool=tool, input=key, **_stamp(path))
        atomic_write(
            osp.join(folder, LEDGER),
            lambda f: json.dump(dict(acsdet_files=1, files=files), f, indent=1, sort_keys=True))
