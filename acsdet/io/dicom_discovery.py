"""Finding the CT series in a DICOM archive: a folder at any depth, or a ``.zip`` of a study.

Every file is read once, header only (pydicom, ``stop_before_pixels``), and sorted into series
by SeriesInstanceUID. What is not a CT image is left out with a note, never read as one:
secondary captures (screenshots, dose reports), localizer / scout series (every image
``LOCALIZER``), other modalities and non-image objects (SEG, SR, PR, ...), files that are not
DICOM. A CT series keeps its single localizer images here; the reader leaves them out with its
own note (:mod:`acsdet.io.dicom`).

``python tools/infer.py ... INPUT --list`` prints :func:`describe_series` of each input.
"""
import contextlib
import os
import os.path as osp
import tempfile
import zipfile
from collections import defaultdict
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from ..utils.errors import naming
from .ct_volume import CTReadError

ENHANCED_CT = '1.2.840.10008.5.1.4.1.1.2.1'
#: Secondary Capture Image Storage and its multi-frame variants.
SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7'

#: The most a zip input may hold uncompressed (GiB; ``ACSDET_MAX_UNZIP_GB``): a larger one is
#: refused before extraction (a "zip bomb" of a few MB can hold terabytes).
MAX_UNZIP_BYTES = int(float(os.environ.get('ACSDET_MAX_UNZIP_GB', 16)) * (1 << 30))
#: Free space left beside an extraction (bytes).
UNZIP_RESERVE_BYTES = 256 << 20
_ZIP_PREFIX = 'acsdet-zip-'
_OWNER_LOCK = '.acsdet-owner.lock'


def is_zip(path: str) -> bool:
    """A ``.zip`` file, by name and by the signature of its first bytes (a truncated or damaged
    zip is one too: reading it says what is wrong with it)."""
    if osp.isdir(path) or not path.lower().endswith('.zip'):
        return False
    try:
        with open(path, 'rb') as f:
            head = f.read(4)
    except OSError:
        return False
    return head in (b'PK\x03\x04', b'PK\x05\x06') or zipfile.is_zipfile(path)


@dataclass
class DicomSeries:
    """One series found in an archive.

    Attributes:
        uid: SeriesInstanceUID; ``number``: SeriesNumber (or None); ``description``.
        kind: ``'ct'`` (classic, one file a slice), ``'enhanced-ct'`` (one multi-frame file),
            or why it is left out: ``'localizer'``, ``'secondary-capture'``, ``'not-ct'``.
        files: its files (absolute paths); ``images``: how many CT images (frames for enhanced).
        thickness_mm: SliceThickness of its first image (None if not given).
        modality, study_uid, patient_id: of its first file.
    """
    uid: str
    kind: str
    files: List[str] = field(default_factory=list)
    images: int = 0
    number: Optional[int] = None
    description: str = ''
    thickness_mm: Optional[float] = None
    modality: str = ''
    study_uid: str = ''
    patient_id: str = ''
    #: the headers of ``files`` (pydicom, no pixel data), read once by :func:`scan_folder`
    datasets: list = field(default_factory=list, repr=False)

    @property
    def is_ct(self) -> bool:
        return self.kind in ('ct', 'enhanced-ct')

    def why_left_out(self) -> str:
        """Why a series that is not CT is left out, in words."""
        return {
            'localizer': 'localizer / scout images',
            'secondary-capture': 'secondary capture',
        }.get(self.kind, f'modality {self.modality or "unknown"}, not a CT image')

    def label(self) -> str:
        """``#<number> '<description>'`` for messages."""
        num = f'#{self.number} ' if self.number is not None else ''
        return f"{num}'{self.description}'" if self.description else (num.strip() or self.uid)


def _kind(ds) -> str:
    sop = str(getattr(ds, 'SOPClassUID', ''))
    if sop.startswith(SECONDARY_CAPTURE):
        return 'secondary-capture'
    if str(getattr(ds, 'Modality', '')).upper() != 'CT' or 'Rows' not in ds:
        return 'not-ct'  # another modality, or not an image (SEG, SR, PR, ...)
    if sop == ENHANCED_CT or int(getattr(ds, 'NumberOfFrames', 1) or 1) > 1:
        return 'enhanced-ct'
    types = [str(v).upper() for v in getattr(ds, 'ImageType', [])]
    return 'localizer' if 'LOCALIZER' in types else 'ct'


def _number(v) -> Optional[int]:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _float(v) -> Optional[float]:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


class _Discovery:
    """What :func:`one_discovery` keeps: extracted archives and scanned folders."""

    def __init__(self):
        self.stack = contextlib.ExitStack()
        self.folders: Dict[str, str] = {}
        self.scans: Dict[str, Tuple[List[DicomSeries], List[str]]] = {}


_DISCOVERY: ContextVar[Optional[_Discovery]] = ContextVar('acsdet_dicom_discovery', default=None)


@contextlib.contextmanager
def one_discovery() -> Iterator[None]:
    """Within the block, each zip is extracted once and each folder's DICOM headers are read
    once, however often a run plans, expands and reads the same study; the extracted folders
    are removed when the block ends. Outside it, every call extracts and scans afresh."""
    if _DISCOVERY.get() is not None:  # nested: the outer block's
        yield
        return
    cache = _Discovery()
    token = _DISCOVERY.set(cache)
    try:
        with cache.stack:
            yield
    finally:
        _DISCOVERY.reset(token)


def scan_folder(folder: str) -> Tuple[List[DicomSeries], List[str]]:
    """The series under ``folder`` (recursively), CT first, then by series number; and the names
    of the files that are not readable DICOM (``DICOMDIR`` and hidden files are not counted).
    Inside :func:`one_discovery`, a folder is scanned once."""
    cache = _DISCOVERY.get()
    if cache is None:
        return _scan_folder(folder)
    key = osp.realpath(folder)
    if key not in cache.scans:
        cache.scans[key] = _scan_folder(folder)
    return cache.scans[key]


def read_header(path: str):
    """The header of a DICOM file (no pixel data), or None if it is not one with a series: a
    Part 10 file, or a bare data set without the 128-byte preamble and file meta (as older
    systems write them, and GDCM reads them), taken only when it holds a SOP class, a
    SeriesInstanceUID and a Modality."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            if not all(k in ds for k in ('SOPClassUID', 'SeriesInstanceUID', 'Modality')):
                return None
        except Exception:  # noqa: BLE001 - garbage read as a data set raises many types
            return None
    except Exception:  # noqa: BLE001 - damaged (pydicom raises many types)
        return None
    try:
        str(ds.SeriesInstanceUID)
    except Exception:  # noqa: BLE001
        return None
    return ds


def _scan_folder(folder: str) -> Tuple[List[DicomSeries], List[str]]:
    groups: Dict[str, List[Tuple[str, object, str]]] = defaultdict(list)
    skipped = []
    visited = {osp.realpath(folder)}
    for root, dirs, files in os.walk(folder, followlinks=True):  # a linked series folder counts
        keep = []
        for d in sorted(d for d in dirs if not d.startswith('.')):
            real = osp.realpath(osp.join(root, d))
            if real not in visited:  # each folder once: a link loop or a second link is skipped
                visited.add(real)
                keep.append(d)
        dirs[:] = keep
        for name in sorted(files):
            if name.startswith('.') or name.upper() == 'DICOMDIR':
                continue
            path = osp.join(root, name)
            if not osp.isfile(path):  # regular files only: a FIFO or socket would block a read
                skipped.append(osp.relpath(path, folder))
                continue
            ds = read_header(path)
            if ds is None:  # not DICOM, no series UID, or damaged
                skipped.append(osp.relpath(path, folder))
                continue
            uid = str(ds.SeriesInstanceUID)
            groups[uid].append((path, ds, _kind(ds)))
    out = []
    for uid, members in groups.items():
        kinds = [k for _, _, k in members]
        if 'ct' in kinds:  # its single localizer images are the reader's to leave out
            kind = 'ct'
        elif 'enhanced-ct' in kinds:
            kind = 'enhanced-ct'
        else:
            kind = max(set(kinds), key=kinds.count)
        first = members[0][1]
        if kind == 'enhanced-ct':
            images = sum(
                int(getattr(ds, 'NumberOfFrames', 1) or 1) for _, ds, k in members
                if k == 'enhanced-ct')
        else:
            images = sum(1 for k in kinds if k == kind)
        members.sort(key=lambda m: m[0])
        out.append(
            DicomSeries(
                uid=uid,
                kind=kind,
                files=[p for p, _, _ in members],
                datasets=[ds for _, ds, _ in members],
                images=images,
                number=_number(getattr(first, 'SeriesNumber', None)),
                description=str(getattr(first, 'SeriesDescription', '') or '').strip(),
                thickness_mm=_float(getattr(first, 'SliceThickness', None)),
                modality=str(getattr(first, 'Modality', '') or ''),
                study_uid=str(getattr(first, 'StudyInstanceUID', '') or ''),
                patient_id=str(getattr(first, 'PatientID', '') or '')))
    out.sort(key=lambda s: (not s.is_ct, s.number if s.number is not None else 1 << 30, s.uid))
    return out, skipped


@contextlib.contextmanager
def dicom_folder(path: str) -> Iterator[str]:
    """A folder holding the archive ``path``: the folder itself, or a ``.zip`` extracted into a
    temporary folder that is removed afterwards (inside :func:`one_discovery`: extracted once,
    removed at the block's end)."""
    if osp.isdir(path):
        yield path
        return
    if not is_zip(path):
        raise CTReadError(f'{path}: not a DICOM folder or a .zip of one')
    cache = _DISCOVERY.get()
    if cache is None:
        with _extracted(path) as tmp:
            yield tmp
        return
    key = osp.realpath(path)
    if key not in cache.folders:
        cache.folders[key] = cache.stack.enter_context(_extracted(path))
    yield cache.folders[key]


def _check_unzip_size(z: zipfile.ZipFile, path: str, folder: str) -> None:
    import shutil
    total = sum(i.file_size for i in z.infolist())
    gib = lambda n: f'{n / (1 << 30):.3g} GiB'  # noqa: E731
    if total > MAX_UNZIP_BYTES:
        raise CTReadError(f'{path}: the zip holds {gib(total)} uncompressed, more than the limit '
                          f'of {gib(MAX_UNZIP_BYTES)} (ACSDET_MAX_UNZIP_GB): not extracted')
    free = shutil.disk_usage(folder).free
    if total + UNZIP_RESERVE_BYTES > free:
        raise CTReadError(f'{path}: extracting needs {gib(total)}, and {folder} has {gib(free)} '
                          'free (set TMPDIR to a larger folder)')


def remove_stale_extractions(parent: Optional[str] = None) -> List[str]:
    """Remove the extraction folders of processes that are gone (on any host sharing
    ``parent``, the temporary folder by default): a live owner holds its folder's lock file for
    the folder's life; a folder without one (a kill before it was made, or an older acsdet) goes
    once it is :data:`~acsdet.utils.files.FOREIGN_STALE_SECONDS` old. Returns those removed."""
    import shutil

    from ..utils.files import file_lock, stale_by_age
    parent = parent or tempfile.gettempdir()
    removed = []
    try:
        names = [n for n in os.listdir(parent) if n.startswith(_ZIP_PREFIX)]
    except OSError:
        return removed
    for name in names:
        folder = osp.join(parent, name)
        if osp.islink(folder) or not osp.isdir(folder):
            continue
        lock = osp.join(folder, _OWNER_LOCK)
        if not osp.isfile(lock):
            stale = stale_by_age(folder)
        else:
            try:
                with file_lock(lock, blocking=False) as taken:
                    stale = taken  # nobody held it: its owner is gone
            except OSError:  # no locks here (some network file systems): keep it
                stale = False
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def _extracted(path: str) -> Iterator[str]:
    """The zip ``path`` extracted into a temporary folder, removed afterwards: the total size is
    checked against :data:`MAX_UNZIP_BYTES` and the free space first; the folder is held under
    a lock for its life (:func:`remove_stale_extractions` removes those of gone processes); a
    SIGTERM ends a command-line run through its clean-up like a SIGINT
    (:func:`acsdet.utils.signals.terminate_as_exit`)."""
    from ..utils.files import file_lock, owner_tag
    remove_stale_extractions()
    with tempfile.TemporaryDirectory(prefix=f'{_ZIP_PREFIX}{owner_tag()}.') as tmp:
        with file_lock(osp.join(tmp, _OWNER_LOCK)):
            try:
                with zipfile.ZipFile(path) as z:
                    _check_unzip_size(z, path, tmp)
                    bad = z.testzip()
                    if bad is not None:
                        raise CTReadError(f'{path}: damaged zip (member {bad} fails its CRC '
                                          'check)')
                    z.extractall(tmp)  # member names are sanitised: nothing lands outside tmp
            except zipfile.BadZipFile as e:
                raise CTReadError(f'{path}: a damaged or truncated zip ({e}): copy it again') \
                    from None
            except (OSError, RuntimeError, EOFError) as e:  # RuntimeError: encrypted
                raise CTReadError(f'{path}: cannot extract the zip ({e})') from None
            yield tmp


def left_out_note(series: List[DicomSeries], skipped: List[str], where: str) -> Optional[str]:
    """One note naming what is not a CT series (or not DICOM), or None."""
    parts = [
        f'{s.label()} ({s.why_left_out()}, {s.images} image(s))' for s in series if not s.is_ct
    ]
    if skipped:
        parts.append(f'{len(skipped)} non-DICOM file(s) ({", ".join(skipped[:3])}'
                     f'{", ..." if len(skipped) > 3 else ""})')
    return f'{where}: left out {"; ".join(parts)}' if parts else None


def find_ct_series(folder: str, where: str) -> Tuple[List[DicomSeries], Optional[str]]:
    """The CT series under ``folder`` and a note on what was left out; a :class:`CTReadError`
    naming ``where`` when there is none."""
    series, skipped = scan_folder(folder)
    note = left_out_note(series, skipped, where)
    ct = [s for s in series if s.is_ct]
    if not ct:
        if not series:
            raise CTReadError(f'{where}: holds no DICOM file' +
                              (f' ({len(skipped)} other file(s))' if skipped else ''))
        raise CTReadError(f'{where}: no CT series; ' + (note or '').split(': ', 1)[-1])
    return ct, note


def pick_series(ct: List[DicomSeries], series: Optional[str], where: str) -> DicomSeries:
    """The series ``series`` (its SeriesInstanceUID) of ``ct``, or the only one."""
    if series is None:
        if len(ct) > 1:
            raise naming(
                CTReadError(f'{where}: holds {len(ct)} CT series, pick one with {{series}} UID (or '
                            'run each with {all_series}; {list} describes them): ' +
                            ', '.join(f'{s.uid} {s.label()}' for s in ct)), 'series', 'all_series',
                'list')
        return ct[0]
    for s in ct:
        if s.uid == series:
            return s
    raise CTReadError(f'{where}: no CT series {series}; it holds ' +
                      ', '.join(f'{s.uid} {s.label()}' for s in ct))


def describe_series(path: str) -> str:
    """The ``--list`` table of the series in a DICOM folder or zip."""
    with dicom_folder(path) as folder:
        series, skipped = scan_folder(folder)
        rows = [('series', 'number', 'description', 'kind', 'images', 'thickness_mm', 'folder')]
        for s in series:
            where = osp.relpath(osp.dirname(s.files[0]), folder) if s.files else ''
            rows.append(
                (s.uid, '' if s.number is None else str(s.number), s.description
                 or '-', s.kind if s.is_ct else f'left out: {s.why_left_out()}', str(s.images),
                 '' if s.thickness_mm is None else f'{s.thickness_mm:g}', where))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f'{path}: {sum(s.is_ct for s in series)} CT series, {len(series)} in all']
    lines += ['  ' + '  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if skipped:
        lines.append(f'  {len(skipped)} file(s) are not DICOM: {", ".join(skipped[:5])}')
    return '\n'.join(lines)
