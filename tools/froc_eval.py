#!/usr/bin/env python
"""Score saved detections with the official DeepLesion FROC, without a model.

    python tools/froc_eval.py DETECTIONS [GT] [--out-dir DIR] [--iou 0.5] [--fps 0.5 1 2 4 8 16]

DETECTIONS:
  * the ``--out`` pickle of ``tools/test.py`` (MMDetection's dumped data samples; loaded with a
    restricted unpickler that resolves only tensors, numpy arrays and plain containers), or
  * a JSON object ``{"<series>/<slice>.png": [[x1, y1, x2, y2, score], ...], ...}``.
GT:
  * a COCO file written by ``data_converters/deeplesion_to_coco.py`` (noisy lesions are left out,
    as in the official protocol; lesion type, size and thickness subsets are reported), or
  * a JSON object ``{"<series>/<slice>.png": [[x1, y1, x2, y2], ...], ...}``;
  * omitted: the GT stored in the pickle's samples (``instances``).
Plain JSON boxes are inclusive pixel boxes, as in DL_info.csv (0-based), scored with the official
+1-pixel IoU; pickles and COCO files hold MMDetection's continuous boxes and are converted
(``acsdet/deeplesion/boxes.py``).

Images are matched by their DeepLesion key ``<series>/<slice>.png`` (any path ending with it);
COCO ids shift when a re-conversion skips a row, so they are used only when the detections carry
no file names, and then every id must exist in GT and either the pickle holds its own GT (which
must be the same lesions) or the detections carry the GT file's fingerprint: a JSON key
``"gt_fingerprint"`` equal to the COCO file's (``info.fingerprint``, written by the converter, or
``acsdet.deeplesion.coco.coco_fingerprint``); id-only detections without either are refused.
A JSON file with an image twice is refused (a plain JSON reader keeps the last one). Evaluated
images are those of GT with at least one lesion (the official protocol); detections of other
images are ignored and counted. Malformed input (a detection that
is not 5 finite numbers, x2 < x1, a score that is not finite) is an error naming the file and
the image.
"""
import argparse
import json
import os.path as osp
import pickle
import re

import numpy as np

from acsdet.deeplesion.boxes import continuous_to_inclusive
from acsdet.deeplesion.coco import (coco_fingerprint, complete_interrupted_conversion,
                                    read_coco_annotations)
from acsdet.deeplesion.naming import image_key
from acsdet.evaluation.froc import DEFAULT_FPS
from acsdet.evaluation.froc_metric import FROCMetric
from acsdet.utils.safe_pickle import load_results_pickle


class InputError(ValueError):
    """Bad input to the CLI: the message names the file and the image."""


def _rows(value, cols: int, path: str, image, what: str) -> np.ndarray:
    """``value`` as an ``(n, cols)`` float array of finite numbers with x2 >= x1, y2 >= y1."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f'{path}: image {image}: {what} must be lists of {cols} numbers, got '
                         f'{str(value)[:80]}') from None
    if arr.size == 0:
        return np.zeros((0, cols))
    if arr.ndim != 2 or arr.shape[1] != cols:
        raise InputError(f'{path}: image {image}: {what} must be an (n, {cols}) list '
                         f'[x1, y1, x2, y2{", score" if cols == 5 else ""}] per box, got shape '
                         f'{arr.shape}')
    bad = ~np.isfinite(arr).all(1)
    if bad.any():
        raise InputError(f'{path}: image {image}: {what} {int(np.argmax(bad))} has a non-finite '
                         f'number: {arr[np.argmax(bad)].tolist()}')
    inverted = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if inverted.any():
        j = int(np.argmax(inverted))
        raise InputError(f'{path}: image {image}: {what} {j} has x2 < x1 or y2 < y1: '
                         f'{arr[j].tolist()}')
    return arr


def _pickle_dets(sample, path: str, i: int) -> np.ndarray:
    name = sample.get('img_path') or sample.get('img_id', f'#{i}')
    pred = sample.get('pred_instances')
    if not isinstance(pred, dict) or 'bboxes' not in pred or 'scores' not in pred:
        raise InputError(f'{path}: sample {i} ({name}): no pred_instances with bboxes and scores')
    boxes = _rows(np.asarray(pred['bboxes'], dtype=np.float64), 4, path, name, 'box')
    scores = np.asarray(pred['scores'], dtype=np.float64).reshape(-1)
    if len(scores) != len(boxes):
        raise InputError(f'{path}: image {name}: {len(boxes)} boxes but {len(scores)} scores')
    dets = np.hstack([continuous_to_inclusive(boxes), scores[:, None]])
    return _rows(dets, 5, path, name, 'detection')


def load_detections(path: str):
    """``([dict(key, id, dets (n, 5) inclusive)], samples or None, GT fingerprint or None)``."""
    if path.endswith(('.pkl', '.pickle')):
        samples = load_results_pickle(path)
        if not isinstance(samples, list) or not all(isinstance(s, dict) for s in samples):
            raise InputError(f'{path}: expected a list of data samples (tools/test.py --out)')
        entries = [
            dict(
                key=image_key(s['img_path']) if s.get('img_path') else None,
                id=s.get('img_id'),
                dets=_pickle_dets(s, path, i)) for i, s in enumerate(samples)
        ]
        return entries, samples, None
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise InputError(
            f'{path}: expected a JSON object {{"<series>/<slice>.png": [[x1, y1, x2, y2, score], '
            '...]}')
    fingerprint = raw.pop('gt_fingerprint', None)
    entries = []
    for k, v in raw.items():
        is_id = re.fullmatch(r'\d+', k) is not None
        entries.append(
            dict(
                key=None if is_id else image_key(k),
                id=int(k) if is_id else None,
                dets=_rows(v, 5, path, k, 'detection')))
    return entries, None, fingerprint


def _unique_keys(path: str):

    def hook(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise InputError(f'{path}: key {k!r} appears twice in one JSON object (a JSON '
                                 'reader would silently keep the last one)')
            seen.add(k)
        return dict(pairs)

    return hook


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f, object_pairs_hook=_unique_keys(path))
    except json.JSONDecodeError as e:
        raise InputError(f'{path}: not a JSON file ({e})') from None


def load_gt(path: str):
    """``(images, fingerprint)``: a list of ``dict(key, id, instances (inclusive boxes),
    slice_interval)`` per image (all images, with or without lesions) from a COCO file (its
    :func:`coco_fingerprint`) or a plain JSON object (None). A conversion that was killed while
    replacing its files is completed before the file is read."""
    complete_interrupted_conversion(path)
    raw = _read_json(path)
    if isinstance(raw, dict) and 'images' in raw and 'annotations' in raw:  # COCO
        out = []
        for img in read_coco_annotations(path, raw):
            inst = [
                dict(a, bbox=continuous_to_inclusive(a['bbox']).tolist()) for a in img['lesions']
                if not a['noisy']
            ]
            out.append(
                dict(
                    key=img['key'],
                    id=img['id'],
                    instances=inst,
                    slice_interval=img['slice_interval']))
        return out, coco_fingerprint(raw)
    if not isinstance(raw, dict):
        raise InputError(
            f'{path}: expected COCO or a JSON object {{image: [[x1, y1, x2, y2], ...]}}')
    return [
        dict(
            key=image_key(k),
            id=None,
            instances=[dict(bbox=b) for b in _rows(v, 4, path, k, 'GT box').tolist()],
            slice_interval=None) for k, v in raw.items()
    ], None


def gt_from_samples(samples):
    out = []
    for s in samples:
        inst = [
            dict(a, bbox=continuous_to_inclusive(a['bbox']).tolist())
            for a in s.get('instances', []) if not a.get('ignore_flag', 0)
        ]
        out.append(
            dict(
                key=image_key(s['img_path']) if s.get('img_path') else None,
                id=s.get('img_id'),
                instances=inst,
                slice_interval=s.get('slice_interval')))
    return out


def _index(entries, field: str, path: str) -> dict:
    out = {}
    for e in entries:
        if e[field] in out:
            raise InputError(f'{path}: image {e[field]} appears twice')
        out[e[field]] = e
    return out


def match(entries, gt, samples, det_path: str, gt_path: str, fingerprints=(None, None)):
    """``{GT index: (n, 5) detections}`` and the number of detection entries matched to no GT
    image. By image key when every detection entry has one; else by id, checked: against the
    pickle's own GT, or by the detections' GT fingerprint (``fingerprints``: the detections',
    the GT file's)."""
    if all(e['key'] is not None for e in entries):
        dets = _index(entries, 'key', det_path)
        gt_index = {g['key']: i for i, g in enumerate(gt)}
        matched = {gt_index[k]: e['dets'] for k, e in dets.items() if k in gt_index}
        return matched, len(dets) - len(matched)
    if any(g['id'] is None for g in gt):
        raise InputError(f'{det_path}: detections without file names can only be matched by COCO '
                         f'id, and {gt_path} has no ids')
    dets = _index(entries, 'id', det_path)
    gt_index = {g['id']: i for i, g in enumerate(gt)}
    unknown = sorted(set(dets) - set(gt_index), key=str)
    if unknown:
        raise InputError(f'{det_path}: image ids {unknown[:10]} are not in {gt_path}: the ids do '
                         'not line up (match by file name: detections need img_path / '
                         '"<series>/<slice>.png" keys)')
    own_gt = samples is not None and all('instances' in s for s in samples)
    theirs, ours = fingerprints
    if not own_gt and (theirs is None or theirs != ours):
        raise InputError(
            f'{det_path}: detections keyed by COCO id only, without their own GT, cannot be '
            f'checked against {gt_path}: ids change when the file is converted again. Key them by '
            '"<series>/<slice>.png", or add "gt_fingerprint": '
            f'{ours!r} if they were made for exactly this file'
            if ours else f'{det_path}: detections keyed by COCO id only need a COCO GT file')
    if samples is not None:
        for sample, own in zip(samples, gt_from_samples(samples)):
            if 'instances' not in sample:
                continue
            theirs = gt[gt_index[own['id']]]['instances']
            a = np.array(sorted(x['bbox'] for x in own['instances']), dtype=np.float64)
            b = np.array(sorted(x['bbox'] for x in theirs), dtype=np.float64)
            if a.shape != b.shape or not np.allclose(a, b, atol=1e-3):
                raise InputError(
                    f'{det_path}: image id {own["id"]} holds other lesions than in {gt_path}: '
                    'the ids do not line up (was the COCO file converted again?)')
    return {gt_index[i]: e['dets'] for i, e in dets.items()}, 0


def _check_args(p, args):
    if not 0 < args.iou <= 1:
        p.error(f'--iou must be in (0, 1], got {args.iou}')
    if not all(np.isfinite(f) and f > 0 for f in args.fps):
        p.error(f'--fps must be positive numbers, got {args.fps}')


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[2])
    p.add_argument('detections')
    p.add_argument('gt', nargs='?')
    p.add_argument('--iou', type=float, default=0.5)
    p.add_argument('--fps', type=float, nargs='+', default=list(DEFAULT_FPS))
    p.add_argument('--out-dir', help='write froc.json and froc_curve.png here')
    args = p.parse_args(argv)
    _check_args(p, args)
    for path in filter(None, (args.detections, args.gt)):
        if not osp.isfile(path):
            p.error(f'no such file: {path}')

    try:
        entries, samples, det_fingerprint = load_detections(args.detections)
        gt_fingerprint = None
        if args.gt:
            (gt, gt_fingerprint), gt_path = load_gt(args.gt), args.gt
        elif samples is not None:
            gt, gt_path = gt_from_samples(samples), args.detections
        else:
            p.error('GT is required unless DETECTIONS is a tools/test.py pickle holding instances')
        matched, unmatched = match(entries, gt, samples, args.detections, gt_path,
                                   (det_fingerprint, gt_fingerprint))
    except (InputError, ValueError, OSError, pickle.UnpicklingError) as e:
        p.exit(2, f'{p.prog}: error: {e}\n')
    evaluated = [i for i, g in enumerate(gt) if g['instances']]
    if not evaluated:
        p.error('no image with a GT lesion to evaluate')

    metric = FROCMetric(
        fps=args.fps, iou_thr=args.iou, output_dir=args.out_dir,
        continuous_boxes=False)  # everything is inclusive pixel boxes by now
    missing = 0
    for i in evaluated:
        arr = matched.get(i)
        if arr is None:
            missing += 1
            arr = np.zeros((0, 5))
        metric.process({}, [
            dict(
                pred_instances=dict(bboxes=arr[:, :4], scores=arr[:, 4]),
                instances=gt[i]['instances'],
                slice_interval=gt[i]['slice_interval'])
        ])
    ignored = unmatched + sum(1 for i in matched if not gt[i]['instances'])
    if missing:
        print(f'note: {missing} GT images have no detections (scored as empty)')
    if ignored:
        print(f'note: detections of {ignored} images without GT lesions were ignored')
    metrics, text = metric.summarize(metric.results)
    print(text)
    if args.out_dir:
        print(f'wrote {osp.join(args.out_dir, "froc.json")} and froc_curve.png')
    return metrics


if __name__ == '__main__':
    main()
