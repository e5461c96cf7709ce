#!/usr/bin/env python
"""FROC of volumetric against per-slice inference: the same checkpoint on DeepLesion-format
series run as whole CT volumes, scored on their annotated key slices.

    python benchmarks/froc_volumetric.py CONFIG CHECKPOINT DATA_ROOT
        [--ann annotations/deeplesion_test.json] [--depth-chunk 32] [--device cpu]
        [--precision fp32 bf16]

Each series of the annotation file is read as a CT (``read_ct``, its geometry from
``DATA_ROOT/DL_info.csv``). Per-slice: every annotated key slice's D-slice stack through the model
(``LesionDetector.predict_slices``). Volumetric: one 3D pass over the series
(``LesionDetector.predict_volume``); a key slice takes the detections of its grid slice. Both are
scored with the official FROC (``acsdet.evaluation.compute_froc``; noisy lesions left out, as the
test loader does), and the difference of the 0.5-4 average is printed. ``--precision fp32 bf16``
adds a volumetric run in bfloat16 (``--precision bf16`` of ``acsdet infer``), its difference to
the float32 one, and how many float32 boxes at score >= 0.5 it keeps within 1 px.
"""
import argparse
import os
import os.path as osp
import re
import time
from collections import defaultdict

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('data_root')
    p.add_argument('--ann', default='annotations/deeplesion_test.json')
    p.add_argument('--depth-chunk', type=int, default=32)
    p.add_argument('--device', default='cpu')
    p.add_argument('--precision', nargs='+', default=['fp32'], choices=['fp32', 'bf16'])
    args = p.parse_args(argv)
    from acsdet.apis import LesionDetector
    from acsdet.deeplesion.boxes import continuous_to_inclusive
    from acsdet.deeplesion.coco import read_coco_annotations
    from acsdet.evaluation import compute_froc
    from acsdet.io import read_ct
    images = read_coco_annotations(osp.join(args.data_root, args.ann))
    by_series = defaultdict(list)
    for img in images:
        by_series[img['key'].split('/')[0]].append(img)
    runs = [('per-slice', 'fp32')] + [('volumetric', p) for p in args.precision]
    detectors = {
        (mode if precision == 'fp32' else f'{mode} {precision}'):
        LesionDetector(
            args.config,
            args.checkpoint,
            args.device,
            score_thr=0.0,
            volumetric=mode == 'volumetric',
            depth_chunk=args.depth_chunk,
            precision=precision)
        for mode, precision in runs
    }
    dets = {mode: [] for mode in detectors}
    seconds = {mode: 0.0 for mode in detectors}
    gts = []
    for series, imgs in sorted(by_series.items()):
        folder = osp.join(args.data_root, 'Images_png', series)
        numbers = sorted(
            int(m.group(1)) for n in os.listdir(folder) for m in [re.match(r'^(\d+)\.png$', n)]
            if m)
        vol = read_ct(folder, dl_info=osp.join(args.data_root, 'DL_info.csv'))
        keys = [numbers.index(int(img['key'].split('/')[1][:-4])) for img in imgs]
        for mode, det in detectors.items():
            t0 = time.perf_counter()
            if mode.startswith('volumetric'):
                preds = det.predict_volume(vol, keys)[0]
            else:
                preds = det.predict_slices(vol, keys)[0]
            seconds[mode] += time.perf_counter() - t0
            for _, boxes, scores, _ in preds:
                dets[mode].append(
                    np.hstack([continuous_to_inclusive(boxes),
                               scores.reshape(-1, 1)]).astype(np.float64))
        for img in imgs:
            gt = [les['bbox'] for les in img['lesions'] if not les['noisy']]
            gts.append(continuous_to_inclusive(np.array(gt, dtype=np.float64).reshape(-1, 4)))
    print(f'{len(gts)} key slices of {len(by_series)} series, '
          f'{sum(len(g) for g in gts)} lesions; {args.config}, {args.checkpoint}')
    print('| mode | ' + ' | '.join(f'{f:g}'
                                   for f in (0.5, 1, 2, 4, 8, 16)) + ' | Avg (0.5-4) | s |')
    print('|---' * 9 + '|')
    avg = {}
    for mode in detectors:
        res = compute_froc(dets[mode], gts)
        avg[mode] = res.average
        print(f'| {mode} | ' + ' | '.join(f'{100 * s:.2f}' for s in res.sensitivities) +
              f' | {100 * res.average:.2f} | {seconds[mode]:.1f} |')
    print(f'volumetric - per-slice, Avg (0.5-4): '
          f'{100 * (avg["volumetric"] - avg["per-slice"]):+.2f} points')
    if 'volumetric bf16' in avg:
        kept, total = same_boxes(dets['volumetric'], dets['volumetric bf16'])
        print(f'volumetric bf16 - fp32, Avg (0.5-4): '
              f'{100 * (avg["volumetric bf16"] - avg["volumetric"]):+.2f} points; float32 boxes at '
              f'score >= 0.5 with a bfloat16 box within 1 px: {kept} of {total}')


def same_boxes(reference, other, min_score=0.5, tol=1.0):
    """How many of ``reference``'s boxes (score >= ``min_score``) have a box in ``other`` on the
    same key slice with every edge within ``tol`` px: ``(found, total)``."""
    found = total = 0
    for ref, oth in zip(reference, other):
        for box in ref[ref[:, 4] >= min_score, :4]:
            total += 1
            found += bool(len(oth)) and bool((np.abs(oth[:, :4] - box).max(axis=1) <= tol).any())
    return found, total


if __name__ == '__main__':
    main()
