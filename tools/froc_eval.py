#!/usr/bin/env python
"""Score saved detections with the official DeepLesion FROC, without a model.

    python tools/froc_eval.py DETECTIONS [GT] [--out-dir DIR] [--iou 0.5] [--fps 0.5 1 2 4 8 16]

DETECTIONS:
  * the ``--out`` pickle of ``tools/test.py`` (MMDetection's dumped data samples), or
  * a JSON object ``{"<image>": [[x1, y1, x2, y2, score], ...], ...}``.
GT:
  * a COCO file written by ``data_converters/deeplesion_to_coco.py`` (noisy lesions are left out,
    as in the official protocol; lesion type, size and thickness subsets are reported), or
  * a JSON object ``{"<image>": [[x1, y1, x2, y2], ...], ...}``;
  * omitted: the GT stored in the pickle's samples (``instances``).
Plain JSON boxes are inclusive pixel boxes, as in DL_info.csv (0-based), scored with the official
+1-pixel IoU; pickles and COCO files hold continuous boxes (MMDetection, COCO) and are converted.
Images are matched by COCO ``id``/``img_id`` or by file name (``000001_01_01/109.png``, or any path
ending with it). Evaluated images are those of GT with at least one lesion (the official protocol);
detections of other images are ignored and counted.
"""
import argparse
import json
import os.path as osp
import pickle
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from acsdet.evaluation.froc import DEFAULT_FPS  # noqa: E402
from acsdet.evaluation.froc_metric import FROCMetric  # noqa: E402


def _key(path: str) -> str:
    """``<series>/<slice>.png`` from any path of a DeepLesion key slice."""
    parts = str(path).replace('\\', '/').split('/')
    return '/'.join(parts[-2:])


def load_detections(path: str):
    """``({image key or id: (n, 5) array}, samples or None)``."""
    if path.endswith(('.pkl', '.pickle')):
        with open(path, 'rb') as f:
            samples = pickle.load(f)
        dets = {}
        for s in samples:
            pred = s['pred_instances']
            boxes = np.asarray(pred['bboxes'], dtype=np.float64).reshape(-1, 4) - [0, 0, 1, 1]
            scores = np.asarray(pred['scores'], dtype=np.float64).reshape(-1, 1)
            arr = np.hstack([boxes, scores])
            if s.get('img_id') is not None:
                dets[('id', s['img_id'])] = arr
            if s.get('img_path'):
                dets[('file', _key(s['img_path']))] = arr
        return dets, samples
    with open(path) as f:
        raw = json.load(f)
    if not isinstance(raw, dict):
        raise ValueError(
            f'{path}: expected a JSON object {{image: [[x1, y1, x2, y2, score], ...]}}')
    dets = {}
    for k, v in raw.items():
        arr = np.asarray(v, dtype=np.float64).reshape(-1, 5) if len(v) else np.zeros((0, 5))
        dets[('file', _key(k))] = arr
    return dets, None


def load_gt(path: str):
    """A list of ``(match keys, boxes (m, 4), instances, slice_interval)`` per image with GT."""
    with open(path) as f:
        raw = json.load(f)
    out = []
    if isinstance(raw, dict) and 'images' in raw and 'annotations' in raw:  # COCO
        anns = {}
        for a in raw['annotations']:
            anns.setdefault(a['image_id'], []).append(a)
        for img in raw['images']:
            inst = []
            for a in anns.get(img['id'], []):
                if a.get('noisy', 0):
                    continue
                x, y, w, h = a['bbox']  # continuous -> inclusive pixel box
                inst.append(
                    dict(
                        bbox=[x, y, x + w - 1, y + h - 1],
                        lesion_type=a.get('lesion_type', -1),
                        long_diameter_mm=a.get('long_diameter_mm')))
            if inst:
                keys = [('id', img['id']), ('file', _key(img['file_name']))]
                out.append((keys, inst, img.get('slice_interval')))
        return out
    if not isinstance(raw, dict):
        raise ValueError(
            f'{path}: expected COCO or a JSON object {{image: [[x1, y1, x2, y2], ...]}}')
    for k, v in raw.items():
        inst = [dict(bbox=list(b)) for b in v]
        if inst:
            out.append(([('file', _key(k))], inst, None))
    return out


def gt_from_samples(samples):
    out = []
    for s in samples:
        inst = [
            dict(a, bbox=list(np.asarray(a['bbox'], float) - [0, 0, 1, 1]))
            for a in s.get('instances', []) if not a.get('ignore_flag', 0)
        ]
        if inst:
            keys = [('id', s.get('img_id')), ('file', _key(s.get('img_path', '')))]
            out.append((keys, inst, s.get('slice_interval')))
    return out


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

    dets, samples = load_detections(args.detections)
    if args.gt:
        gt = load_gt(args.gt)
    elif samples is not None:
        gt = gt_from_samples(samples)
    else:
        p.error('GT is required unless DETECTIONS is a tools/test.py pickle holding instances')
    if not gt:
        p.error('no image with a GT lesion to evaluate')

    metric = FROCMetric(
        fps=args.fps, iou_thr=args.iou, output_dir=args.out_dir,
        continuous_boxes=False)  # everything is inclusive pixel boxes by now
    used, missing = set(), 0  # ids of the matched detection arrays (an image may have 2 keys)
    for keys, inst, interval in gt:
        arr = next((dets[k] for k in keys if k in dets), None)
        if arr is None:
            missing += 1
            arr = np.zeros((0, 5))
        else:
            used.add(id(arr))
        sample = dict(
            pred_instances=dict(bboxes=arr[:, :4], scores=arr[:, 4]),
            instances=inst,
            slice_interval=interval)
        metric.process({}, [sample])
    unmatched = len({id(v) for v in dets.values()} - used)
    if missing:
        print(f'note: {missing} GT images have no detections (scored as empty)')
    if unmatched:
        print(f'note: detections of {unmatched} images without GT lesions were ignored')
    metrics, text = metric.summarize(metric.results)
    print(text)
    if args.out_dir:
        print(f'wrote {osp.join(args.out_dir, "froc.json")} and froc_curve.png')
    return metrics


if __name__ == '__main__':
    main()
