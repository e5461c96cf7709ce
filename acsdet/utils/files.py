"""Atomic file writing (one file, or a set of files replaced together), the temporaries it
leaves (who owns them, which are stale) and advisory file locks.

The rule for temporaries: each carries its owner (``<host hash>-<pid>``, :func:`owner_tag`) in its
name, and a later run removes it only once the owner is gone: on this host when no process of
that id runs; on another host (a shared folder of a cluster or of containers) when it has not
changed for :data:`FOREIGN_STALE_SECONDS` (24 h; ``ACSDET_FOREIGN_STALE_HOURS``), since no host
can see another's processes and acsdet's file and case temporaries live seconds to minutes. What
lives as long as a run (a zip's extraction folder) is held under a :func:`file_lock` instead:
one whose lock can be taken is a gone process's, on any host that shares the folder.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import os.path as osp
import re
import socket
import time
import uuid
from typing import IO, Callable, Dict, Iterator, List, Optional

#: Left in a folder while :func:`atomic_write_set` renames its files; its presence means a
#: commit was interrupted, and :func:`finish_write_set` completes it.
WRITE_SET_JOURNAL = '.acsdet-write-set.json'
#: After ``<name>.``: ``[<owner>.]<32 hex>.tmp|old`` (owner: :func:`owner_tag`; older acsdet
#: versions wrote none).
_TMP_SUFFIX = re.compile(r'(?:([0-9a-f]{8}-\d+)\.)?[0-9a-f]{32}\.(?:tmp|old)')
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]
#: The lock file of a folder (:func:`folder_lock`) where the folder itself cannot be locked.
FOLDER_LOCK = '.acsdet.lock'
#: How long a temporary of another host's process stays untouched before it counts as stale.
FOREIGN_STALE_SECONDS = 3600 * float(os.environ.get('ACSDET_FOREIGN_STALE_HOURS', 24))


def owner_tag() -> str:
    """``<host hash>-<pid>``: who made a temporary, so that a later run removes only those of
    processes that are gone (never a live writer's, on this or another host)."""
    return f'{_HOST}-{os.getpid()}'


def owner_is_dead(tag: Optional[str], path: Optional[str] = None) -> bool:
    """Whether the process of an :func:`owner_tag` has ended: on this host, no process of that
    id runs; on another host, the temporary ``path`` (when given) has not changed for
    :data:`FOREIGN_STALE_SECONDS`. False when unknown."""
    host, _, pid = (tag or '').partition('-')
    if not pid.isdigit() or len(host) != 8:
        return False
    if host != _HOST:
        return path is not None and stale_by_age(path)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def hashed_name(name: str, key: str) -> str:
    """``<name>-<8 hex of key>``: the second name of an output whose plain name another input
    has (case folders, the files of :mod:`acsdet.utils.run_outputs`), stable across runs."""
    return f'{name}-{hashlib.sha1(key.encode()).hexdigest()[:8]}'


def stale_by_age(path: str) -> bool:
    """Whether ``path`` has not changed for :data:`FOREIGN_STALE_SECONDS` (False if it is gone):
    how a temporary of a process this host cannot see is known to be stale."""
    try:
        return time.time() - os.lstat(path).st_mtime > FOREIGN_STALE_SECONDS
    except OSError:
        return False


def temporary_name(path: str, suffix: str = 'tmp') -> str:
    """A unique ``<path>.<owner>.<hex>.<suffix>`` beside ``path``."""
    return f'{path}.{owner_tag()}.{uuid.uuid4().hex}.{suffix}'


def stale_temporaries(directory: str, prefix: str) -> List[str]:
    """Temporaries ``<prefix>[<owner>.]<hex>.tmp|.old`` (``prefix`` ends with ``.``) in
    ``directory`` left by processes that are gone (without an owner: made by an older acsdet,
    taken as stale)."""
    out = []
    try:
        names = os.listdir(directory)
    except OSError:
        return out
    for name in names:
        if not name.startswith(prefix):
            continue
        m = _TMP_SUFFIX.fullmatch(name[len(prefix):])
        path = osp.join(directory, name)
        if m and (m.group(1) is None or owner_is_dead(m.group(1), path)):
            out.append(path)
    return out


def remove_stale_files(directory: str, prefix: str) -> None:
    """Remove the stale temporary *files* :func:`stale_temporaries` finds."""
    for path in stale_temporaries(directory, prefix):
        if osp.isfile(path) or osp.islink(path):
            os.remove(path)


def _write_tmp(tmp: str, write: Callable[[IO], None], newline: Optional[str], binary: bool,
               fsync: bool) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    with os.fdopen(fd, 'wb' if binary else 'w', newline=None if binary else newline) as f:
        write(f)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def atomic_save(path: str, save: Callable[[str], None], extension: str = '') -> None:
    """``save(tmp)`` writes a file *by name* (a library writer: ``SimpleITK.WriteImage``,
    ``cv2.imwrite``) into a uniquely named temporary beside ``path`` (ending in ``extension``,
    so the writer picks the format), which is then renamed over ``path``: readers see the old
    file or the complete new one, never a partial one, also with several writers. A symlink at
    ``path`` is replaced, never written through; a failed write leaves ``path`` as it was."""
    tmp = temporary_name(path, 'tmp' + extension)
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)


def atomic_write(path: str,
                 write: Callable[[IO], None],
                 newline: Optional[str] = None,
                 binary: bool = False,
                 fsync: bool = True) -> None:
    """:func:`atomic_save` of a file written through ``write(f)`` on an open file object.
    ``fsync=False`` skips flushing to disk (for caches, where losing the newest entry on power
    loss is harmless)."""
    atomic_save(path, lambda tmp: _write_tmp(tmp, write, newline, binary, fsync))


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not supported here (e.g. some network file systems)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def finish_write_set(directory: str) -> bool:
    """Complete a commit of :func:`atomic_write_set` that was interrupted while renaming (the
    journal lists every temporary, all complete, so rolling forward yields the new set). Returns
    whether there was one to finish."""
    journal = osp.join(directory, WRITE_SET_JOURNAL)
    if not osp.isfile(journal):
        return False
    with open(journal) as f:
        renames = json.load(f)['renames']
    for tmp, final in renames:
        tmp, final = osp.join(directory, tmp), osp.join(directory, final)
        if osp.lexists(tmp):
            os.replace(tmp, final)
    _fsync_dir(directory)
    os.remove(journal)
    return True


def atomic_write_set(directory: str, writers: Dict[str, Callable[[IO], None]]) -> None:
    """Replace the files ``writers`` names (``{file name: write(f)}``) in ``directory`` as one
    set: a reader, or a run after a kill at any point, sees every old file or every new one,
    never a mix, and no temporary is left behind.

    Every file is first written completely to a temporary beside it; then a journal listing the
    renames is written atomically, the renames are made, and the journal is removed. A kill
    before the journal exists leaves the old set (the next call removes the stray temporaries);
    a kill after it is rolled forward to the new set by :func:`finish_write_set`, which this
    function and the readers of such a set call first.
    """
    os.makedirs(directory, exist_ok=True)
    finish_write_set(directory)
    for name in writers:  # temporaries of an earlier run killed before its journal
        remove_stale_files(directory, name + '.')
    tmps = {}
    try:
        for name, write in writers.items():
            tmps[name] = temporary_name(osp.join(directory, name))
            _write_tmp(tmps[name], write, None, False, True)
        renames = [[osp.basename(t), name] for name, t in tmps.items()]
        atomic_write(
            osp.join(directory, WRITE_SET_JOURNAL), lambda f: json.dump(dict(renames=renames), f))
    except BaseException:
        for t in tmps.values():
            if osp.lexists(t):
                os.remove(t)
        raise
    finish_write_set(directory)


def check_writable_dir(directory: str, what: str = 'output folder') -> None:
    """Create ``directory`` if needed and prove a file can be created in it; else an ``OSError``
    naming it (so long jobs fail before their work, not after). A path that exists and is not a
    folder is named as such."""
    if osp.exists(directory) and not osp.isdir(directory):
        raise OSError(f'cannot write to the {what} {directory}: it is a file, not a folder')
    try:
        os.makedirs(directory, exist_ok=True)
        remove_stale_files(directory, '.write-probe.')  # of runs killed between two lines
        probe = temporary_name(osp.join(directory, '.write-probe'))
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.remove(probe)
    except OSError as e:
        raise OSError(f'cannot write to the {what} {directory}: {e.strerror or e}') from e


@contextlib.contextmanager
def file_lock(path: str, blocking: bool = True) -> Iterator[bool]:
    """An exclusive advisory lock (``flock``) on the file ``path`` (created if needed) for the
    block: concurrent acsdet runs serialise their read-modify-write of a shared file (a folder's
    ``summary.csv``) through it, on one host and on network file systems that support locks. The
    lock ends with the process, however it ends. Yields whether it was taken (always True when
    ``blocking``)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder_lock(directory: str) -> Iterator[None]:
    """:func:`file_lock` of a folder, serialising the read-modify-write of its shared files
    (``summary.csv``, the ledger of :mod:`acsdet.utils.run_outputs`): the folder itself is locked
    where the file system allows it (local ones), else its lock file :data:`FOLDER_LOCK` (NFS
    locks need a file open for writing)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        fd = None
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            fd = None
    if fd is None:
        with file_lock(osp.join(directory, FOLDER_LOCK)):
            yield
        return
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def file_sha256(path: str) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (a checkpoint's identity)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()
