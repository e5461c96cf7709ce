"""FROC evaluation at the DeepLesion test-set scale: 4,817 images x 50 detections, 4,912 lesions.

Compares the vectorised :func:`compute_froc` with MULAN's one-detection-at-a-time loop as the tests
transliterate it (`tests/official_froc.py`, their oracle).

    .venv/bin/python benchmarks/bench_froc.py [--images 4817] [--dets 50]
"""
import argparse
import os.path as osp
import sys
import time

import numpy as np

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _common import markdown_table  # noqa: E402

from acsdet.evaluation import compute_froc  # noqa: E402
from tests.official_froc import sens_at_fp  # noqa: E402  (MULAN's loop, the tests' oracle)


def synthetic(n_img, n_det, n_lesions, seed=0):
    rng = np.random.default_rng(seed)
    per_img = np.ones(n_img, int)
    per_img[rng.choice(n_img, n_lesions - n_img, replace=False)] += 1
    gts, dets = [], []
    for m in per_img:
        xy = rng.uniform(0, 450, (m, 2))
        wh = rng.uniform(5, 60, (m, 2))
        g = np.hstack([xy, xy + wh])
        near = g[rng.integers(m, size=n_det // 5)] + rng.normal(0, 4, (n_det // 5, 4))
        xy = rng.uniform(0, 450, (n_det - len(near), 2))
        far = np.hstack([xy, xy + rng.uniform(5, 60, (len(xy), 2))])
        boxes = np.vstack([near, far])
        dets.append(np.hstack([boxes, rng.random((n_det, 1))]))
        gts.append(g)
    return dets, gts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--images', type=int, default=4817)
    p.add_argument('--dets', type=int, default=50)
    p.add_argument('--lesions', type=int, default=4912)
    args = p.parse_args(argv)
    dets, gts = synthetic(args.images, args.dets, args.lesions)
    t0 = time.perf_counter()
    fast = [compute_froc(dets, gts) for _ in range(5)][-1]
    t_fast = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    slow = sens_at_fp(dets, gts, fast.fps)
    t_slow = time.perf_counter() - t0
    assert np.allclose(fast.sensitivities, slow)
    print(f'FROC on {args.images} images x {args.dets} detections, {args.lesions} lesions')
    print(
        markdown_table(
            ['implementation', 'seconds', 'speed-up'],
            [['reference loop (one detection at a time)', f'{t_slow:.3f}', '1.0x'],
             ['acsdet compute_froc (vectorised)', f'{t_fast:.3f}', f'{t_slow / t_fast:.0f}x']]))


if __name__ == '__main__':
    main()
