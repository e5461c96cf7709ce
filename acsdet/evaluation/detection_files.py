"""Saved detections and ground truth read from files and matched image by image, for the
official FROC without a model (``tools/froc_eval.py``).

Detections: the ``--out`` pickle of ``tools/test.py`` (read with a restricted unpickler) or a
JSON object ``{"<series>/<slice>.png": [[x1, y1, x2, y2, score], ...]}``. GT: a COCO file of
``data_converters/deeplesion_to_coco.py`` (noisy lesions left out), a JSON object of inclusive
boxes, or the GT stored in the pickle's samples. Images are matched by their DeepLesion key; by
COCO id only when the detections carry no file names, and then checked (the pickle's own GT, or
the GT file's fingerprint). Malformed input is an :class:`InputError` naming the file and image.
"""
import json
import re

import numpy as np

from ..deeplesion.boxes import continuous_to_inclusive
from ..deeplesion.coco import (coco_fingerprint, complete_interrupted_conversion,
                               read_coco_annotations)
from ..deeplesion.naming import image_key
from ..utils.safe_pickle import load_results_pickle


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
    """``({GT index: (n, 5) detections}, keys of detection images not in GT)``. By image key
    when every detection entry has one (none matching at all is an :class:`InputError` listing
    some: another naming, not an empty result); else by id, checked: against the pickle's own
    GT, or by the detections' GT fingerprint (``fingerprints``: the detections', the GT
    file's)."""
    if all(e['key'] is not None for e in entries):
        dets = _index(entries, 'key', det_path)
        gt_index = {g['key']: i for i, g in enumerate(gt)}
        matched = {gt_index[k]: e['dets'] for k, e in dets.items() if k in gt_index}
        unknown = sorted(k for k in dets if k not in gt_index)
        if dets and not matched:
            raise InputError(f'{det_path}: none of its {len(dets)} images is an image of {gt_path}'
                             f' (e.g. {", ".join(repr(k) for k in unknown[:3])}; images are '
                             'matched by "<series>/<slice>.png", case and spaces included)')
        return matched, unknown
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
    return {gt_index[i]: e['dets'] for i, e in dets.items()}, []


def score_matched(matched: dict, gt: list, fps, iou_thr: float, output_dir=None, outputs=None):
    """The FROC of the matched detections (:func:`match`) over the GT images with a lesion.

    Args:
        matched: ``{GT index: (n, 5) inclusive detections}``.
        gt: the GT images (:func:`load_gt` / :func:`gt_from_samples`).
        fps: false positives per image to report.
        iou_thr: IoU for a hit.
        output_dir: where :class:`~acsdet.evaluation.FROCMetric` writes its files (None: none).
        outputs: their :class:`~acsdet.utils.run_outputs.RunOutputs` (the run's inputs known).

    Returns:
        ``(metrics, table text, GT images without detections, matched images without a GT
        lesion)``.
    """
    from .froc_metric import FROCMetric
    evaluated = [i for i, g in enumerate(gt) if g['instances']]
    if not evaluated:
        raise InputError('no image with a GT lesion to evaluate')
    metric = FROCMetric(
        fps=fps, iou_thr=iou_thr, output_dir=output_dir,
        continuous_boxes=False)  # everything is inclusive pixel boxes by now
    if outputs is not None:
        metric.outputs = outputs
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
    without_gt = sum(1 for i in matched if not gt[i]['instances'])
    metrics, text = metric.summarize(metric.results)
    return metrics, text, missing, without_gt
