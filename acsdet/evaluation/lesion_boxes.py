"""3D boxes to score with :mod:`.froc3d`: detections from ``tools/infer.py``'s ``lesions.json``,
ground truth from label maps, box CSVs or DeepLesion's manual 3D test set, each as inclusive
voxel boxes ``[x1, y1, z1, x2, y2, z2]`` in one frame per case.

The frame is the CT as ``lesions.json`` describes it (``geometry``: acsdet's LPI-ordered volume,
x = column, y = row, z = slice, head to feet). Detections are their ``box_voxel`` (continuous
edges ``[x1, x2)`` -> voxel centres ``x1 .. x2 - 1``; slices inclusive). Ground truth comes in
the input file's own voxel indices (label maps, CSV ``voxel``) or LPS millimetres (CSV ``lps``)
and is mapped into that frame with the case's geometry. DeepLesion's manual 3D test set is
already in its frame, with z the series' PNG slice numbers: a sub-volume
``{series}_{top}-{bottom}`` is scored from the case of that name (the NIfTI of exactly those
slices, ``data_converters/deeplesion_to_nifti.py --sub-volumes``), its slice z being PNG
``top + z``.
"""
import csv
import json
import os
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

LESIONS_JSON = 'lesions.json'
SUB_VOLUME = re.compile(r'^(?P<series>\d{6}_\d{2}_\d{2})_(?P<top>\d+)-(?P<bottom>\d+)$')


class LesionBoxError(ValueError):
    """An input that cannot be scored, with the file (and case, row or field) named."""


@dataclass
class CaseGeometry:
    """A CT's geometry as ``lesions.json`` gives it: the volume acsdet detected in (LPI-ordered,
    ``size``/``spacing`` x, y, z) and how the input file stores it (``perm``/``flip``/
    ``stored_size``: stored axis ``perm[i]`` is the volume's axis ``i``, reversed where
    ``flip[i]``)."""
    size: np.ndarray
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray  # 3 x 3, columns the volume's index axes in LPS
    perm: Tuple[int, int, int]
    flip: Tuple[bool, bool, bool]
    stored_size: np.ndarray

    @classmethod
    def from_json(cls, geo: dict, where: str) -> 'CaseGeometry':
        try:
            axes = geo['stored_axes']
            return cls(
                np.asarray(geo['size_xyz'], np.int64), np.asarray(geo['spacing_xyz_mm'], float),
                np.asarray(geo['origin_lps_mm'], float),
                np.asarray(geo['direction'], float).reshape(3, 3),
                tuple(int(p) for p in axes['perm']), tuple(bool(f) for f in axes['flip']),
                np.asarray(axes['size_xyz'], np.int64))
        except (KeyError, TypeError, ValueError) as e:
            raise LesionBoxError(f'{where}: geometry is missing or malformed ({e!r}): not a '
                                 'lesions.json of tools/infer.py') from None

    @classmethod
    def from_volume(cls, vol) -> 'CaseGeometry':
        """The geometry of a :class:`~acsdet.io.CTVolume` (what ``lesions.json`` records)."""
        perm, flip, stored = vol.to_stored
        return cls(
            np.array(vol.hu.shape[::-1]), np.array(vol.spacing[::-1], float),
            np.asarray(vol.origin, float), np.asarray(vol.direction, float), tuple(perm),
            tuple(flip), np.array(stored))

    def stored_to_voxel(self, ijk: np.ndarray) -> np.ndarray:
        """Indices ``(..., 3)`` (i, j, k) of the input file as stored -> this frame's (x, y, z)."""
        ijk = np.asarray(ijk, float)
        out = np.empty_like(ijk)
        for i in range(3):
            v = ijk[..., self.perm[i]]
            out[..., i] = self.stored_size[self.perm[i]] - 1 - v if self.flip[i] else v
        return out

    def lps_to_voxel(self, lps: np.ndarray) -> np.ndarray:
        """LPS mm ``(..., 3)`` -> this frame's fractional (x, y, z) (slices evenly spaced)."""
        rel = np.asarray(lps, float) - self.origin
        return (rel @ self.direction) / self.spacing

    def stored_image(self) -> dict:
        """Size, spacing, origin and direction of the input file as stored (what a label map in
        its geometry must have)."""
        inv = [0, 0, 0]
        for i in range(3):
            inv[self.perm[i]] = i
        first = np.array([self.size[i] - 1 if self.flip[i] else 0 for i in range(3)], float)
        origin = self.origin + self.direction @ (first * self.spacing)
        direction = np.stack(
            [self.direction[:, inv[j]] * (-1 if self.flip[inv[j]] else 1) for j in range(3)], 1)
        return dict(
            size=self.stored_size.copy(),
            spacing=self.spacing[inv],
            origin=origin,
            direction=direction)


def _is_number(v) -> bool:
    """A JSON number (not a string, not a boolean), finite."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _pair_of_numbers(v) -> list:
    if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(_is_number(a) for a in v):
        raise TypeError(v)
    return [float(a) for a in v]


def check_inside(box, geo: CaseGeometry, where: str) -> None:
    """Refuse an inclusive voxel box ``[x1, y1, z1, x2, y2, z2]`` that is inverted or lies
    (partly) outside the CT of ``geo`` (by more than half a voxel), naming ``where``."""
    b = np.asarray(box, float)
    size = geo.size.astype(float)
    if (b[3:] < b[:3]).any():
        raise LesionBoxError(f'{where}: inverted box {np.round(b, 2).tolist()} (x2 < x1, y2 < y1 '
                             'or z2 < z1)')
    if (b[:3] < -0.5).any() or (b[3:] > size - 0.5).any():
        raise LesionBoxError(f'{where}: box {np.round(b, 2).tolist()} lies outside the CT of '
                             f'{size.astype(int).tolist()} voxels (x, y, z; indices from 0)')


def inclusive_box(x, y, z) -> list:
    """A lesion's ``box_voxel`` (x, y: continuous edges ``[first, last)``; z: inclusive slices)
    as an inclusive voxel box ``[x1, y1, z1, x2, y2, z2]``: the voxel centres ``x1 .. x2 - 1``,
    at least one (a box narrower than a voxel covers the one it starts in)."""
    return [x[0], y[0], z[0], max(x[1] - 1, x[0]), max(y[1] - 1, y[0]), z[1]]


@dataclass
class CaseDetections:
    """One ``lesions.json``: its case name, file, geometry and boxes ``(n, 7)`` with scores."""
    case: str
    path: str
    geometry: CaseGeometry
    boxes: np.ndarray


def read_lesions_json(path: str, case: Optional[str] = None) -> CaseDetections:
    """A ``lesions.json`` of ``tools/infer.py``; the case is its folder's name unless given."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise LesionBoxError(f'{path}: cannot read a lesions.json ({e})') from None
    if not isinstance(doc, dict) or not isinstance(doc.get('lesions'), list):
        raise LesionBoxError(f'{path}: no "lesions" list: not a lesions.json of tools/infer.py')
    geo = CaseGeometry.from_json(doc.get('geometry') or {}, path)
    rows = []
    for n, les in enumerate(doc['lesions']):
        try:
            b = les['box_voxel']
            x, y, z = (_pair_of_numbers(b[a]) for a in 'xyz')
            score = les['score']
            if not _is_number(score):
                raise TypeError
            row = [*inclusive_box(x, y, z), float(score)]
        except (KeyError, TypeError, IndexError, ValueError):
            raise LesionBoxError(f'{path}: lesion {n} has no 3D box (box_voxel x, y, z: two '
                                 'numbers each, and a numeric score): written by an older '
                                 'tools/infer.py, or edited?') from None
        check_inside(row[:6], geo, f'{path}: lesion {n}')
        rows.append(row)
    name = case or osp.basename(osp.dirname(osp.abspath(path)))
    return CaseDetections(name, path, geo, np.array(rows, float).reshape(-1, 7))


def find_detections(paths: Sequence[str]) -> Dict[str, CaseDetections]:
    """Detections by case from ``lesions.json`` files, folders searched for them (case folders
    of ``tools/infer.py --out-dir``, at any depth), or manifest CSVs (a column ``lesions_json``
    and optionally ``case``; paths relative to the manifest). Two files of one case name are an
    error naming both."""
    found: List[Tuple[str, Optional[str]]] = []
    for p in paths:
        if osp.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith('.'))  # no temporaries
                if LESIONS_JSON in files:
                    found.append((osp.join(root, LESIONS_JSON), None))
        elif p.lower().endswith('.csv'):
            found += _manifest(p)
        elif osp.isfile(p):
            found.append((p, None))
        else:
            raise LesionBoxError(f'{p}: no such file or folder')
    out: Dict[str, CaseDetections] = {}
    for path, case in found:
        det = read_lesions_json(path, case)
        if det.case in out:
            raise LesionBoxError(f'case {det.case!r} has two lesions.json: {out[det.case].path} '
                                 f'and {path} (name it in a manifest with a case column)')
        out[det.case] = det
    if not out:
        raise LesionBoxError(f'no lesions.json in {", ".join(paths)}')
    return out


def _manifest(path: str) -> List[Tuple[str, Optional[str]]]:
    with open(path, newline='', encoding='utf-8-sig') as f:
        reader = csv.DictReader(f)
        if 'lesions_json' not in (reader.fieldnames or []):
            raise LesionBoxError(f'{path}: a manifest needs a lesions_json column (and '
                                 f'optionally case), got {reader.fieldnames}')
        base = osp.dirname(osp.abspath(path))
        out = []
        for line, r in enumerate(reader, start=2):
            if not (r.get('lesions_json') or '').strip():
                raise LesionBoxError(f'{path}, line {line}: no lesions_json (a missing cell?)')
            out.append((osp.join(base, r['lesions_json'].strip()), (r.get('case') or '').strip()
                        or None))
        return out


# ---------------------------------------------------------------- ground truth


def _box_of(ijk: np.ndarray) -> np.ndarray:
    return np.concatenate([ijk.min(0), ijk.max(0)])


def label_map_boxes(path: str, geo: CaseGeometry, lesions: str = 'components') -> np.ndarray:
    """GT boxes ``(n, 6)`` in the case's frame from a label map (NIfTI, NRRD, any SimpleITK
    format) in the geometry of the CT as stored: ``lesions='components'``: each 3D connected
    region of non-zero voxels (26-connected) is a lesion; ``'labels'``: each label value is
    one. A map in another geometry is an error naming the field that differs."""
    import SimpleITK as sitk
    from scipy import ndimage
    if lesions not in ('components', 'labels'):
        raise LesionBoxError(f"lesions must be 'components' or 'labels', got {lesions!r}")
    try:
        img = sitk.ReadImage(path)
    except RuntimeError as e:
        raise LesionBoxError(f'{path}: cannot read a label map ({str(e).strip()[:200]})') from None
    want = geo.stored_image()
    have = dict(
        size=np.array(img.GetSize()),
        spacing=np.array(img.GetSpacing()),
        origin=np.array(img.GetOrigin()),
        direction=np.array(img.GetDirection()).reshape(3, 3))
    tol = dict(size=0, spacing=1e-3, origin=1e-2, direction=1e-4)
    for key, t in tol.items():
        if have[key].shape != want[key].shape or np.abs(have[key] - want[key]).max() > t:
            raise LesionBoxError(
                f'{path}: {key} {np.round(have[key], 4).tolist()} differs from the CT\'s '
                f'{np.round(want[key], 4).tolist()}: ground truth must be in the geometry of '
                'the CT that was scored')
    arr = sitk.GetArrayFromImage(img)  # (k, j, i)
    if arr.dtype.kind == 'f' and not np.all(arr == np.round(arr)):
        raise LesionBoxError(f'{path}: a label map holds whole numbers, this one fractions')
    if (arr < 0).any():
        raise LesionBoxError(f'{path}: negative labels ({int(arr.min())})')
    if lesions == 'components':
        ids, _ = ndimage.label(arr != 0, structure=np.ones((3, 3, 3), bool))
    else:  # each label value one lesion, renumbered 1..n (values may be large: 4e9)
        values, ids = np.unique(arr, return_inverse=True)
        ids = ids.reshape(arr.shape) + (0 if values[0] == 0 else 1)
    boxes = []
    for sl in ndimage.find_objects(ids):
        if sl is None:  # a label value not present
            continue
        (k0, j0, i0), (k1, j1, i1) = [s.start for s in sl], [s.stop - 1 for s in sl]
        corners = np.array([[i, j, k] for i in (i0, i1) for j in (j0, j1) for k in (k0, k1)])
        boxes.append(_box_of(geo.stored_to_voxel(corners)))
    return np.array(boxes, float).reshape(-1, 6)


CSV_COLUMNS = ('case', 'x1', 'y1', 'z1', 'x2', 'y2', 'z2')


class BoxRows(np.ndarray):
    """GT corner pairs ``(n, 6)`` of one case read from a CSV, with ``where`` (``file, line``
    of each row) for messages."""
    where: List[str]


def _box_rows(rows: List[List[float]], where: List[str]) -> BoxRows:
    out = np.array(rows, float).reshape(-1, 6).view(BoxRows)
    out.where = where
    return out


def read_box_csv(path: str) -> Dict[str, BoxRows]:
    """GT boxes by case from a CSV with columns ``case, x1, y1, z1, x2, y2, z2`` (two opposite
    corners; what they are in is the caller's ``units``). A malformed row is an error naming
    its line."""
    out: Dict[str, List[List[float]]] = {}
    lines: Dict[str, List[str]] = {}
    with open(path, newline='', encoding='utf-8-sig') as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise LesionBoxError(
                f'{path}: missing columns {missing} (need {", ".join(CSV_COLUMNS)})')
        for line, r in enumerate(reader, start=2):
            try:
                vals = [float(r[c]) for c in CSV_COLUMNS[1:]]
            except (TypeError, ValueError):
                raise LesionBoxError(f'{path}, line {line}: a coordinate is not a number: '
                                     f'{[r[c] for c in CSV_COLUMNS[1:]]}') from None
            if not np.isfinite(vals).all() or not r['case']:
                raise LesionBoxError(f'{path}, line {line}: needs a case and six finite numbers')
            out.setdefault(r['case'], []).append(vals)
            lines.setdefault(r['case'], []).append(f'{path}, line {line}')
    return {k: _box_rows(v, lines[k]) for k, v in out.items()}


def csv_boxes_to_frame(rows: np.ndarray, geo: CaseGeometry, units: str) -> np.ndarray:
    """Corner pairs ``(n, 6)`` in the input file's voxel indices (``'voxel'``) or LPS mm
    (``'lps'``) -> boxes in the case's frame (voxel centres, rounded to the nearest)."""
    if units not in ('voxel', 'lps'):
        raise LesionBoxError(f"units must be 'voxel' or 'lps', got {units!r}")
    out = []
    where = getattr(rows, 'where', None)
    for n, r in enumerate(np.asarray(rows, float).reshape(-1, 6)):
        a, b = r[:3], r[3:]
        corners = np.array([[x, y, z] for x in (a[0], b[0]) for y in (a[1], b[1])
                            for z in (a[2], b[2])])
        v = geo.stored_to_voxel(corners) if units == 'voxel' else geo.lps_to_voxel(corners)
        box = np.round(_box_of(np.round(v, 6)))
        check_inside(box, geo, where[n] if where else f'GT box {n}')
        out.append(box)
    return np.array(out, float).reshape(-1, 6)


def long_side_mm(boxes: np.ndarray, geo: CaseGeometry) -> np.ndarray:
    """The longer in-plane side (mm) of each box ``(n, 6)``: the size the subsets use."""
    b = np.asarray(boxes, float).reshape(-1, 6)
    return np.maximum((b[:, 3] - b[:, 0] + 1) * geo.spacing[0],
                      (b[:, 4] - b[:, 1] + 1) * geo.spacing[1])


def read_manual_3d_test_set(path: str, split: str = 'test') -> Dict[str, np.ndarray]:
    """DeepLesion's manual 3D annotations (``DeepLesion_manual_1K_test_release.pkl``: split ->
    sub-volume ``{series}_{top}-{bottom}`` -> ``(n, 6)`` boxes, z the series' PNG slice
    numbers), read without running code from the file."""
    from ..utils.safe_pickle import load_results_pickle
    doc = load_results_pickle(path)
    if not isinstance(doc, dict) or split not in doc:
        keys = list(doc) if isinstance(doc, dict) else type(doc).__name__
        raise LesionBoxError(f'{path}: no split {split!r} (has {keys})')
    out = {}
    for name, boxes in doc[split].items():
        if not SUB_VOLUME.match(str(name)):
            raise LesionBoxError(f'{path}: {name!r} is not a sub-volume name '
                                 '{series}_{top}-{bottom}')
        out[str(name)] = np.asarray(boxes, float).reshape(-1, 6)
    return out


def sub_volume_offset(case: str) -> int:
    """The PNG slice number of slice 0 of a DeepLesion sub-volume case (its ``top``)."""
    m = SUB_VOLUME.match(case)
    if not m:
        raise LesionBoxError(f'case {case!r} is not a DeepLesion sub-volume '
                             '{series}_{top}-{bottom}')
    return int(m.group('top'))
