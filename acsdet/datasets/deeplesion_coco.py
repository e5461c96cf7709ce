"""DeepLesion (``DL_info.csv`` + ``Images_png/``) to COCO files with GrabCut weak masks.

Writes ``deeplesion_{train,val,test}.json``: images are key slices (with the fields the slice
loader needs: series folder, key slice index, slice range and interval, pixel spacing, DICOM
window, size); annotations carry the box (COCO ``x, y, w, h``, 0-based, ``x + w`` = the inclusive
right edge of DeepLesion's box), RECIST points, diameters, lesion type, the noisy flag, ``iscrowd``,
the mask area, a weak mask as COCO RLE and the method that made it. Malformed CSV rows and lesions
whose PNG is missing or unreadable are skipped and reported; output is written atomically and
only once everything succeeded, so an interrupted run leaves earlier files untouched.
"""
import json
import multiprocessing as mp
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..utils import atomic_write, mask_to_rle
from .deeplesion_info import SPLITS, LesionRecord, group_by_key_slice, read_dl_info
from .slices import decode_slice
from .weak_masks import SOFT_TISSUE_WINDOW, WIDE_WINDOW, weak_mask

SPLIT_IDS = {v: k for k, v in SPLITS.items()}
WINDOWS = ('dicom', 'wide', 'soft')


def _window_of(rec: LesionRecord, window: Union[str, Sequence[float]]):
    if not isinstance(window, str):
        return tuple(window)
    if window == 'dicom':
        return rec.window if rec.window and rec.window[1] > rec.window[0] else SOFT_TISSUE_WINDOW
    return WIDE_WINDOW if window == 'wide' else SOFT_TISSUE_WINDOW


def process_key_slice(task) -> Tuple[str, Optional[str], List[dict]]:
    """Worker: ``(path, [(record, window)])`` -> ``(path, error or None, [mask results])``."""
    path, lesions = task
    try:
        hu = decode_slice(path)
    except (OSError, ValueError) as e:
        return path, str(e), []
    out = []
    for rec, window in lesions:
        mask, method = weak_mask(hu, rec.bbox, rec.recist, window)
        out.append(dict(segmentation=mask_to_rle(mask), area=int(mask.sum()), mask_method=method))
    return path, None, out


@dataclass
class ConversionSummary:
    images: Dict[str, int] = field(default_factory=dict)
    lesions: Dict[str, int] = field(default_factory=dict)
    noisy: Dict[str, int] = field(default_factory=dict)
    skipped: List[Tuple[int, str]] = field(default_factory=list)  # (CSV line, reason)
    fallbacks: int = 0
    seconds: float = 0.0
    files: List[str] = field(default_factory=list)

    @property
    def total_lesions(self) -> int:
        return sum(self.lesions.values())

    def report(self) -> str:
        lines = ['split   images  lesions  (noisy)']
        for s in self.images:
            lines.append(f'{s:<7} {self.images[s]:>6} {self.lesions[s]:>8}  ({self.noisy[s]})')
        rate = self.total_lesions / self.seconds if self.seconds else float('nan')
        lines.append(f'weak masks: {self.total_lesions - self.fallbacks} GrabCut, {self.fallbacks} '
                     f'ellipse fallbacks; {self.total_lesions} lesions in {self.seconds:.1f} s '
                     f'({rate:.1f} lesions/s)')
        lines.append(f'skipped rows: {len(self.skipped)}')
        lines += [f'  line {ln}: {why}' for ln, why in self.skipped[:50]]
        if len(self.skipped) > 50:
            lines.append(f'  ... and {len(self.skipped) - 50} more (see the report file)')
        return '\n'.join(lines)


def _atomic_json(path: str, obj) -> None:
    atomic_write(path, lambda f: json.dump(obj, f))


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
    if isinstance(window, str) and window not in WINDOWS:
        raise ValueError(f'window must be one of {WINDOWS} or (min, max), got {window!r}')
    t0 = time.time()
    dl_info = dl_info or osp.join(data_root, 'DL_info.csv')
    images_dir = images_dir or osp.join(data_root, 'Images_png')
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
        for path, err, masks in iterator:
            results[path] = (err, masks)
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
                weak_mask_window=str(window)))
        for s in splits
    }
    img_id = ann_id = 0
    for (path, lesions), recs in zip(tasks, groups.values()):
        err, masks = results[path]
        if err:
            summary.skipped += [(r.line, err) for r in recs]
            continue
        r0 = recs[0]
        split = SPLITS[r0.split]
        img_id += 1
        hu_h, hu_w = masks[0]['segmentation']['size']
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
        for r, m in zip(recs, masks):
            ann_id += 1
            x1, y1, x2, y2 = (float(v) for v in r.bbox)
            coco[split]['annotations'].append(
                dict(
                    id=ann_id,
                    image_id=img_id,
                    category_id=1,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
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
    summary.skipped.sort()
    summary.seconds = time.time() - t0

    os.makedirs(out_dir, exist_ok=True)
    for s in splits:  # every split computed: only now replace earlier files
        path = osp.join(out_dir, f'deeplesion_{s}.json')
        _atomic_json(path, coco[s])
        summary.files.append(path)
    _atomic_json(
        osp.join(out_dir, 'deeplesion_conversion_report.json'),
        dict(
            images=summary.images,
            lesions=summary.lesions,
            noisy=summary.noisy,
            ellipse_fallbacks=summary.fallbacks,
            seconds=summary.seconds,
            skipped=[dict(line=ln, reason=why) for ln, why in summary.skipped]))
    return summary
