"""DeepLesion (``DL_info.csv`` + ``Images_png/``) to COCO files with GrabCut weak masks.

Writes ``deeplesion_{train,val,test}.json``: images are key slices (with the fields the slice
loader needs: series folder, key slice index, slice range and interval, pixel spacing, DICOM
window, size); annotations carry the box (COCO ``x, y, w, h``, 0-based, ``w = x2 - x1 + 1`` of
DeepLesion's inclusive box, see :mod:`acsdet.deeplesion.boxes`), RECIST points, diameters, lesion
type, the noisy flag, ``iscrowd``, the mask area, a weak mask as COCO RLE and the method that made
it. Bad input never reaches training: malformed or duplicated CSV rows, lesions whose PNG is
missing or unreadable, whose ``Image_size`` disagrees with the PNG or whose box lies outside the
image are skipped; boxes reaching past the image border, neighbour slices of another size than
their key slice and empty splits are warned about; every case is in the report with its CSV line.
The output folder is checked for writing before any work, and the three JSONs and the report are
replaced as one set (:func:`acsdet.utils.atomic_write_set`) only once everything succeeded.
"""
import functools
import json
import multiprocessing as mp
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..deeplesion.boxes import COCO_BOX_FORMAT, inclusive_to_coco
from ..deeplesion.coco import coco_fingerprint
from ..deeplesion.info import SPLITS, LesionRecord, group_by_key_slice, read_dl_info
from ..deeplesion.png import decode_slice, png_shape
from ..utils import atomic_write_set, check_writable_dir, mask_to_rle
from ..utils.hu import SOFT_TISSUE_WINDOW, WIDE_WINDOW
from ..utils.run_outputs import RunOutputs, record_written
from ..version import __version__
from .weak_masks import weak_mask

SPLIT_IDS = {v: k for k, v in SPLITS.items()}
WINDOWS = ('dicom', 'wide', 'soft')
REPORT_NAME = 'deeplesion_conversion_report.json'


def check_window(window: Union[str, Sequence[float]]) -> Union[str, Tuple[float, float]]:
    """A window name of :data:`WINDOWS` or two finite HU values ``(min, max)`` with min < max;
    anything else is a ``ValueError`` that says what is accepted."""
    if isinstance(window, str):
        if window in WINDOWS:
            return window
        parts = window.split(',')
    else:
        parts = list(window)
    try:
        lo, hi = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise ValueError(f'window must be one of {WINDOWS} or MIN,MAX in HU, got {window!r}') \
            from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f'window MIN,MAX must be finite with MIN < MAX, got {window!r}')
    return lo, hi


def _window_of(rec: LesionRecord, window: Union[str, Sequence[float]]):
    if not isinstance(window, str):
        return tuple(window)
    if window == 'dicom':
        return rec.window if rec.window and rec.window[1] > rec.window[0] else SOFT_TISSUE_WINDOW
    return WIDE_WINDOW if window == 'wide' else SOFT_TISSUE_WINDOW


def _box_problem(box: np.ndarray, w: int, h: int) -> Tuple[Optional[str], Optional[str]]:
    """``(reason to skip, warning)`` for an inclusive box on a ``w`` x ``h`` image."""
    x1, y1, x2, y2 = box
    if x2 < 0 or y2 < 0 or x1 > w - 1 or y1 > h - 1:
        return f'Bounding_boxes: box {_fmt_box(box)} lies outside the {w}x{h} image', None
    if x1 < 0 or y1 < 0 or x2 > w - 1 or y2 > h - 1:
        return None, (f'Bounding_boxes: box {_fmt_box(box)} reaches past the {w}x{h} image; '
                      'kept as in DL_info.csv')
    return None, None


def _fmt_box(box) -> str:
    return '[' + ', '.join(f'{v + 1:g}' for v in box) + ']'  # as in the CSV (1-based)


@functools.lru_cache(maxsize=64)
def _other_size_neighbours(series_dir: str, shape: Tuple[int, int]) -> List[str]:
    """Slices of the series folder whose size differs from ``shape`` (the loader replaces them
    by the nearest slice of the key slice's size; read from the PNG headers only, once per
    series and size in each worker)."""
    out = []
    for name in sorted(os.listdir(series_dir)):
        if name.endswith('.png'):
            try:
                other = png_shape(osp.join(series_dir, name))
            except OSError:
                continue  # unreadable neighbours are the loader's to report
            if other != shape:
                out.append(f'{name} ({other[1]}x{other[0]})')
    return out


def process_key_slice(task) -> Tuple[str, Optional[str], List[dict], List[str]]:
    """Worker: ``(path, [(record, window)])`` -> ``(path, error or None, [per lesion: mask
    result or dict(skip=reason)], [warnings for the key slice])``. Each lesion may also carry a
    ``warning``."""
    path, lesions = task
    try:
        hu = decode_slice(path)
    except (OSError, ValueError) as e:
        return path, str(e), [], []
    h, w = hu.shape
    out = []
    for rec, window in lesions:
        if tuple(rec.image_size) != (w, h):
            out.append(
                dict(skip=f'Image_size: {rec.image_size[0]}x{rec.image_size[1]} in DL_info.csv, '
                     f'but {path} is {w}x{h}'))
            continue
        skip, warning = _box_problem(rec.bbox, w, h)
        if skip:
            out.append(dict(skip=skip))
            continue
        mask, method = weak_mask(hu, rec.bbox, rec.recist, window)
        out.append(
            dict(
                segmentation=mask_to_rle(mask),
                area=int(mask.sum()),
                mask_method=method,
                warning=warning))
    warnings = []
    others = _other_size_neighbours(osp.dirname(path), (h, w))
    if others:
        warnings.append(
            f'{len(others)} slices of {osp.basename(osp.dirname(path))} differ from the key slice '
            f'({w}x{h}): {", ".join(others[:5])}{" ..." if len(others) > 5 else ""}; the loader '
            'replaces them by the nearest slice of the key slice\'s size')
    return path, None, out, warnings


@dataclass
class ConversionSummary:
    images: Dict[str, int] = field(default_factory=dict)
    lesions: Dict[str, int] = field(default_factory=dict)
    noisy: Dict[str, int] = field(default_factory=dict)
    skipped: List[Tuple[int, str]] = field(default_factory=list)  # (CSV line, reason)
    warnings: List[Tuple[int, str]] = field(default_factory=list)  # (CSV line, warning)
    fallbacks: int = 0
    seconds: float = 0.0
    files: List[str] = field(default_factory=list)

    @property
    def total_lesions(self) -> int:
        return sum(self.lesions.values())

    def report(self) -> str:
        lines = ['split   images  lesions  (noisy)']
        for s in self.images:
            empty = '  EMPTY: no key slice in this split' if not self.images[s] else ''
            lines.append(
                f'{s:<7} {self.images[s]:>6} {self.lesions[s]:>8}  ({self.noisy[s]}){empty}')
        rate = self.total_lesions / self.seconds if self.seconds else float('nan')
        lines.append(f'weak masks: {self.total_lesions - self.fallbacks} GrabCut, {self.fallbacks} '
                     f'ellipse fallbacks; {self.total_lesions} lesions in {self.seconds:.1f} s '
                     f'({rate:.1f} lesions/s)')
        lines.append(f'skipped rows: {len(self.skipped)}')
        lines += [f'  line {ln}: {why}' for ln, why in self.skipped[:50]]
        if len(self.skipped) > 50:
            lines.append(f'  ... and {len(self.skipped) - 50} more (see the report file)')
        lines.append(f'warnings: {len(self.warnings)}')
        lines += [f'  line {ln}: {why}' for ln, why in self.warnings[:50]]
        if len(self.warnings) > 50:
            lines.append(f'  ... and {len(self.warnings) - 50} more (see the report file)')
        return '\n'.join(lines)

    def as_json(self) -> dict:
        return dict(
            images=self.images,
            lesions=self.lesions,
            noisy=self.noisy,
            empty_splits=[s for s, n in self.images.items() if not n],
            ellipse_fallbacks=self.fallbacks,
            seconds=self.seconds,
            skipped=[dict(line=ln, reason=why) for ln, why in self.skipped],
            warnings=[dict(line=ln, warning=why) for ln, why in self.warnings])


def _json_writer(obj):
    return lambda f: json.dump(obj, f)


def convert_deeplesion(data_root: str,
                       out_dir: str,
                       splits: Sequence[str] = ('train', 'val', 'test'),
                       workers: int = 1,
                       window: Union[str, Sequence[float]] = 'dicom',
                       progress: bool = False,
                       dl_info: Optional[str] = None,
                       images_dir: Optional[str] = None) -> ConversionSummary:
    """Convert ``data_root`` (``DL_info.csv`` and ``Images_png/``) into COCO files in ``out_dir``.

    ``window``: the 8-bit windowing of GrabCut's input: 'dicom' (the row's DICOM window), 'wide'
    ([-1024, 2050] HU), 'soft' ([-175, 275] HU) or explicit (min, max) HU.
    """
    for s in splits:
        if s not in SPLIT_IDS:
            raise ValueError(f'unknown split {s!r}; choose from {list(SPLIT_IDS)}')
    window = check_window(window)
    check_writable_dir(out_dir)  # before the GrabCut work, not after it
    _other_size_neighbours.cache_clear()  # series folders may have changed since a last run
    t0 = time.time()
    dl_info = dl_info or osp.join(data_root, 'DL_info.csv')
    images_dir = images_dir or osp.join(data_root, 'Images_png')
    names = [f'deeplesion_{s}.json' for s in splits] + [REPORT_NAME]
    outputs = RunOutputs('deeplesion_to_coco', [dl_info])
    for name in names:  # never over the input or a file acsdet did not write; before the work
        outputs.claim(osp.join(out_dir, name))
    records, errors = read_dl_info(dl_info)
    summary = ConversionSummary()
    summary.skipped += [(e.line, f'{e.field}: {e.message}') for e in errors]
    wanted = {SPLIT_IDS[s] for s in splits}
    kept = []
    for r in records:
        if r.split is None:
            summary.skipped.append((r.line, 'Train_Val_Test: missing split'))
        elif r.split in wanted:
            kept.append(r)
    groups = group_by_key_slice(kept)
    tasks = [(osp.join(images_dir, recs[0].key_slice_relpath), [(r, _window_of(r, window))
                                                                for r in recs])
             for recs in groups.values()]

    results = {}
    iterator = None
    pool = mp.get_context('spawn').Pool(workers) if workers > 1 else None
    try:
        iterator = pool.imap(
            process_key_slice, tasks, chunksize=4) if pool else map(process_key_slice, tasks)
        if progress:
            from tqdm import tqdm
            iterator = tqdm(iterator, total=len(tasks), desc='key slices', unit='img')
        for path, err, masks, warnings in iterator:
            results[path] = (err, masks, warnings)
    finally:
        if pool:
            pool.terminate()
            pool.join()

    coco = {
        s:
        dict(
            images=[],
            annotations=[],
            categories=[dict(id=1, name='lesion')],
            info=dict(
                description=f'DeepLesion {s} split, converted by acsdet',
                source=osp.abspath(dl_info),
                weak_mask_window=str(window),
                bbox_format=COCO_BOX_FORMAT,
                acsdet_version=__version__))
        for s in splits
    }
    img_id = ann_id = 0
    for (path, lesions), recs in zip(tasks, groups.values()):
        err, masks, warnings = results[path]
        if err:
            summary.skipped += [(r.line, err) for r in recs]
            continue
        summary.skipped += [(r.line, m['skip']) for r, m in zip(recs, masks) if 'skip' in m]
        kept = [(r, m) for r, m in zip(recs, masks) if 'skip' not in m]
        if not kept:
            continue
        summary.warnings += [(recs[0].line, w) for w in warnings]
        r0 = recs[0]
        split = SPLITS[r0.split]
        img_id += 1
        hu_h, hu_w = kept[0][1]['segmentation']['size']
        coco[split]['images'].append(
            dict(
                id=img_id,
                file_name=r0.key_slice_relpath,
                width=hu_w,
                height=hu_h,
                series_dir=r0.series_dir,
                key_slice=r0.key_slice,
                slice_range=list(r0.slice_range),
                slice_interval=r0.slice_interval,
                spacing=list(r0.spacing) if r0.spacing else None,
                dicom_window=list(r0.window) if r0.window else None,
                patient=r0.patient,
                study=r0.study,
                series=r0.series,
                gender=r0.gender,
                age=r0.age,
                split=split))
        for r, m in kept:
            ann_id += 1
            if m['warning']:
                summary.warnings.append((r.line, m['warning']))
            coco[split]['annotations'].append(
                dict(
                    id=ann_id,
                    image_id=img_id,
                    category_id=1,
                    bbox=inclusive_to_coco(r.bbox),
                    area=m['area'],
                    segmentation=m['segmentation'],
                    iscrowd=0,
                    recist=[float(v) for v in r.recist.reshape(-1)],
                    diameters_px=list(r.diameters_px),
                    long_diameter_mm=r.long_diameter_mm,
                    lesion_type=r.lesion_type,
                    noisy=int(r.noisy),
                    mask_method=m['mask_method'],
                    csv_line=r.line,
                    location=list(r.location) if r.location else None))
            summary.fallbacks += m['mask_method'] != 'grabcut'
    for s in splits:
        summary.images[s] = len(coco[s]['images'])
        summary.lesions[s] = len(coco[s]['annotations'])
        summary.noisy[s] = sum(a['noisy'] for a in coco[s]['annotations'])
    for s in splits:
        coco[s]['info']['fingerprint'] = coco_fingerprint(coco[s])
    summary.skipped.sort()
    summary.warnings.sort()
    summary.seconds = time.time() - t0

    writers = {f'deeplesion_{s}.json': _json_writer(coco[s]) for s in splits}
    writers[REPORT_NAME] = _json_writer(summary.as_json())
    atomic_write_set(out_dir, writers)  # every split computed: only now replace the old set
    for name in writers:
        record_written(osp.join(out_dir, name), 'deeplesion_to_coco')
    summary.files = [osp.join(out_dir, name) for name in writers if name != REPORT_NAME]
    return summary
