"""Weak-mask quality and converter speed on synthetic DeepLesion (true masks known).

Dice against the true key-slice masks for GrabCut with three windowings of its 8-bit input, the
RECIST ellipse and the box, by lesion size; then the converter's throughput (lesions/s) with
``--workers`` processes, PNG decoding included.

    .venv/bin/python benchmarks/bench_weak_masks.py [--num-series 150] [--workers 2]
"""
import argparse
import json
import os.path as osp
import sys
import tempfile
import time

import numpy as np
from pycocotools import mask as mask_utils

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import markdown_table  # noqa: E402

from acsdet.deeplesion.info import key_slice_path, read_dl_info  # noqa: E402
from acsdet.deeplesion.png import decode_slice  # noqa: E402
from acsdet.evaluation.froc import size_bucket  # noqa: E402
from acsdet.preparation.deeplesion_coco import convert_deeplesion  # noqa: E402
from acsdet.preparation.weak_masks import ellipse_mask  # noqa: E402
from acsdet.preparation.weak_masks import grabcut_mask  # noqa: E402
from acsdet.testing.synthetic import make_synthetic_deeplesion  # noqa: E402
from acsdet.utils.hu import window_to_uint8  # noqa: E402
from acsdet.utils.hu import SOFT_TISSUE_WINDOW, WIDE_WINDOW  # noqa: E402


def dice(a, b):
    s = a.sum() + b.sum()
    return 2 * (a & b).sum() / s if s else 1.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--num-series', type=int, default=150)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--data', help='existing synthetic set (default: generate one)')
    args = p.parse_args(argv)
    root = args.data or tempfile.mkdtemp(prefix='acsdet-synth-')
    if not args.data:
        make_synthetic_deeplesion(root, args.num_series, args.seed, 512, context_mm=2.0)
    records, _ = read_dl_info(osp.join(root, 'DL_info.csv'))
    with open(osp.join(root, 'synthetic_truth.json')) as f:
        truth = {t['line']: t for t in json.load(f)['lesions']}
    methods = [
        'GrabCut wide [-1024,2050]', 'GrabCut DICOM window', 'GrabCut soft [-175,275]',
        'RECIST ellipse', 'box'
    ]
    scores = {m: {} for m in methods}
    fallbacks = {m: 0 for m in methods[:3]}
    n = 0
    for r in records:
        t = truth[r.line]
        if t['noisy']:
            continue  # the measurement is deliberately wrong
        n += 1
        hu = decode_slice(key_slice_path(osp.join(root, 'Images_png'), r.file_name))
        gt = mask_utils.decode(t['mask']).astype(bool)
        bucket = size_bucket(t['long_diameter_mm'])
        ell = ellipse_mask(r.recist, hu.shape)
        box = np.zeros_like(gt)
        x1, y1, x2, y2 = np.round(r.bbox).astype(int)
        box[y1:y2 + 1, x1:x2 + 1] = True
        for m, win in zip(methods[:3], (WIDE_WINDOW, r.window, SOFT_TISSUE_WINDOW)):
            mask = grabcut_mask(window_to_uint8(hu, win), r.bbox, r.recist)
            if mask is None:
                fallbacks[m] += 1
                mask = ell
            scores[m].setdefault(bucket, []).append(dice(mask, gt))
        scores['RECIST ellipse'].setdefault(bucket, []).append(dice(ell, gt))
        scores['box'].setdefault(bucket, []).append(dice(box, gt))
    buckets = sorted({b
                      for s in scores.values()
                      for b in s},
                     key=lambda b: ('<' not in b, '-' not in b, b))
    rows = []
    for m in methods:
        allv = [v for b in scores[m].values() for v in b]
        rows.append([m] + [f'{np.mean(scores[m][b]):.3f} (n={len(scores[m][b])})'
                           for b in buckets] +
                    [f'{np.mean(allv):.3f}', str(fallbacks.get(m, '-'))])
    print(
        f'Weak masks vs the synthetic truth: mean Dice, {n} lesions ({len(records)} rows), 512x512')
    print(markdown_table(['method'] + buckets + ['all', 'ellipse fallbacks'], rows))

    out = tempfile.mkdtemp(prefix='acsdet-coco-')
    t0 = time.time()
    s = convert_deeplesion(root, out, workers=args.workers)
    dt = time.time() - t0
    print(f'\nconverter: {s.total_lesions} lesions in {dt:.2f} s with {args.workers} workers = '
          f'{s.total_lesions / dt:.1f} lesions/s (process start-up included); '
          'whole DeepLesion (32,735 lesions) at this rate: '
          f'{32735 / (s.total_lesions / dt) / 60:.1f} min')


if __name__ == '__main__':
    main()
