"""Batch runs: the cases of an input list, which are done, and the run's ``summary.csv`` (the
planning of a run, checked before any model runs, is :mod:`.planner`).

- **Cases.** Each input (a path, or a row of a CSV manifest with ``path`` and optional
  ``series`` and ``case``) is one case; with ``all_series`` a DICOM folder or zip holding several
  CT series is one case per series, named ``<input>_s<SeriesNumber>`` (``<input>_<8 hex of the
  series UID>`` where numbers repeat). Names are then made unique and stable by
  :func:`~acsdet.export.case_folder.assign_case_names` (two ``scan.nii.gz`` in different folders
  never share a folder).
- **Done.** With ``--skip-done`` a case whose folder is complete for its input with every output
  type asked for (:func:`~acsdet.export.case_folder.is_done`) is not run again; a folder left by a
  killed run is never complete (cases are written whole and swapped in).
- **Summary.** ``summary.csv`` (:data:`SUMMARY_FIELDS`) holds the latest row of every case ever
  run into the output folder, merged by input key (column ``key``): a later run replaces the
  rows of its own cases and keeps the others' (a failed case's error stays until that case runs
  again). After every case the file is re-read, merged and replaced atomically under the
  folder's lock (:func:`~acsdet.utils.files.folder_lock`), so concurrent runs
  keep each other's rows and a killed run leaves the rows it finished. New cases are added in
  input order after the rows already there.
"""
import csv
import io
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..io import case_name, input_key
from ..utils import atomic_write
from ..utils.errors import naming
from ..utils.files import folder_lock

SUMMARY_FIELDS = ('case', 'input', 'series', 'status', 'lesions', 'seconds', 'folder', 'error',
                  'key')
#: The header of acsdet 0.4's summaries (no ``key``: keyed by the input's real path and series).
_OLD_FIELDS = SUMMARY_FIELDS[:-1]


@dataclass
class Case:
    """One CT to run: its input path, DICOM series (or None), base name and input key."""
    path: str
    series: Optional[str]
    name: str

    @property
    def key(self) -> str:
        return input_key(self.path, self.series)


class ManifestError(ValueError):
    """A manifest CSV that cannot be read; the message names the file and row."""


def read_manifest_csv(path: str) -> List[Case]:
    """The cases of a CSV manifest: column ``path`` (relative paths are relative to the CSV's
    folder), optional ``series`` (SeriesInstanceUID) and ``case`` (the case folder's name)."""
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            head = reader.fieldnames
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f'{path}: cannot read the manifest ({e})') from None
    if not head or 'path' not in head:
        raise ManifestError(f'{path}: a manifest is a CSV with a header row holding a "path" '
                            f'column (and optionally "series", "case"); its header is {head}')
    if not rows:
        raise ManifestError(f'{path}: the manifest has its header row but no case rows')
    out = []
    base = osp.dirname(osp.abspath(path))
    for i, row in enumerate(rows, 2):
        p = (row.get('path') or '').strip()
        if not p:
            raise ManifestError(f'{path}: row {i} has no path')
        name = (row.get('case') or '').strip()
        if name and (osp.basename(name) != name or name.startswith('.')):
            raise ManifestError(f'{path}: row {i}: case {name!r} must be a plain folder name')
        full = p if osp.isabs(p) else osp.join(base, p)
        out.append(Case(full, (row.get('series') or '').strip() or None, name or case_name(full)))
    return out


class Summary:
    """``summary.csv`` of an output folder: the latest row of every case run into it, merged by
    input key (see the module doc)."""

    def __init__(self, out_dir: str, keys: Sequence[str] = ()):
        self.path = osp.join(out_dir, 'summary.csv')
        self.out_dir = out_dir
        self.keys = list(keys)  # this run's cases, in input order
        if osp.lexists(self.path):  # replaced only if it is a summary acsdet wrote
            self._read()

    def _read(self) -> Dict[str, dict]:
        """The rows of the file by input key (empty without a file)."""
        try:
            with open(self.path, newline='', encoding='utf-8') as f:
                rows = list(csv.reader(f))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, csv.Error):
            rows = None
        head = rows[0] if rows else None
        if osp.islink(self.path) or head not in (list(SUMMARY_FIELDS), list(_OLD_FIELDS)):
            raise naming(
                OSError(f'{self.path} exists and is not a summary acsdet wrote: refusing to '
                        'replace it; move it or choose another {out_dir}'), 'out_dir')
        out = {}
        for values in rows[1:]:
            row = dict(zip(head, values))
            key = row.get('key') or input_key(row.get('input', ''), row.get('series') or None)
            out[key] = row
        return out

    def record(self, key: str, **row) -> None:
        """The row of the case with input key ``key`` (:data:`SUMMARY_FIELDS`)."""
        row = dict(row, key=key)
        with folder_lock(self.out_dir):
            rows = self._read()
            rows[key] = {k: row.get(k, '') for k in SUMMARY_FIELDS}
            ours = set(self.keys)
            keys = list(rows)
            at = next(i for i, k in enumerate(keys) if k in ours or k == key)
            order = [k for k in keys if k not in ours and k != key]  # other runs' cases
            before = sum(1 for k in keys[:at] if k not in ours)
            order[before:before] = [k for k in self.keys if k in rows]  # ours, in input order
            buf = io.StringIO()
            w = csv.DictWriter(buf, SUMMARY_FIELDS, extrasaction='ignore')
            w.writeheader()
            for k in order:
                w.writerow({f: rows[k].get(f, '') for f in SUMMARY_FIELDS})
            atomic_write(self.path, lambda f: f.write(buf.getvalue()), newline='')
