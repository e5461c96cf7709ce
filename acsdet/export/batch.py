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
- **Summary.** ``summary.csv`` (:data:`SUMMARY_FIELDS`), one row per case of the run in input
  order, rewritten atomically after every case, so a killed run leaves the rows it finished.
"""
import csv
import io
import os.path as osp
from dataclasses import dataclass
from typing import List, Optional, Sequence

from ..io import case_name, input_key
from ..utils import atomic_write
from ..utils.errors import naming

SUMMARY_FIELDS = ('case', 'input', 'series', 'status', 'lesions', 'seconds', 'folder', 'error')


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
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f'{path}: cannot read the manifest ({e})') from None
    if not rows or 'path' not in rows[0]:
        raise ManifestError(f'{path}: a manifest is a CSV with a header row holding a "path" '
                            'column (and optionally "series", "case")')
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
    """``summary.csv`` of a run: one row per case (in the order of ``keys``, the cases' input
    keys), rewritten atomically after each."""

    def __init__(self, out_dir: str, keys: Sequence[str]):
        self.path = osp.join(out_dir, 'summary.csv')
        self.rows = {k: None for k in keys}
        if osp.lexists(self.path):  # replaced only if it is a summary acsdet wrote
            try:
                with open(self.path, newline='') as f:
                    head = next(csv.reader(f), None)
            except (OSError, UnicodeDecodeError, csv.Error):
                head = None
            if osp.islink(self.path) or head != list(SUMMARY_FIELDS):
                raise naming(
                    OSError(f'{self.path} exists and is not a summary acsdet wrote: refusing to '
                            'replace it; move it or choose another {out_dir}'), 'out_dir')

    def record(self, key: str, **row) -> None:
        """The row of the case with input key ``key`` (:data:`SUMMARY_FIELDS`)."""
        self.rows[key] = row
        buf = io.StringIO()
        w = csv.DictWriter(buf, SUMMARY_FIELDS, extrasaction='raise')
        w.writeheader()
        for r in self.rows.values():
            if r is not None:
                w.writerow({k: r.get(k, '') for k in SUMMARY_FIELDS})
        atomic_write(self.path, lambda f: f.write(buf.getvalue()), newline='')
