#!/usr/bin/env python
"""Where a key slice's time goes: the dense blocks on its D-slice stack, the depth-collapsing
convolutions, and the rest (neck, heads, post-processing), for one config at 512 x 512.

    python benchmarks/bench_key_slice.py --config configs/deeplesion_acs_7slice.py [--keys 3]

The model has random weights (``bench_infer.random_checkpoint``) and reads a synthetic phantom CT
(``bench_infer.phantom_nifti``). ``LesionDetector.predict_slices`` on ``--keys`` key slices gives
the time a key slice takes per slice; the dense blocks (``TruncatedDenseNet._blocks``) and the
depth-collapsing convolutions are timed alone on one stack (median of ``--rounds``), and the rest
is the difference. A volumetric pass shares only the dense blocks between key slices.
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_infer import phantom_nifti, random_checkpoint  # noqa: E402


def _median_s(fn, rounds):
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', default='configs/deeplesion_acs_7slice.py')
    p.add_argument('--keys', type=int, default=3)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--size', type=int, default=512)
    args = p.parse_args(argv)
    from acsdet.apis import LesionDetector
    from acsdet.io import read_ct
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = random_checkpoint(args.config, tmp)
        vol = read_ct(phantom_nifti(tmp, 24, 2.0, args.size))
        det = LesionDetector(args.config, ckpt, score_thr=0.5)
        keys = list(range(10, 10 + args.keys))
        det.predict_slices(vol, keys[:1])  # warm-up
        t0 = time.perf_counter()
        det.predict_slices(vol, keys)
        per_key = (time.perf_counter() - t0) / len(keys)
    bb = det.model.backbone
    x = torch.randn(1, 1, bb.num_slices, args.size, args.size)
    with torch.no_grad():
        blocks = _median_s(lambda: bb._blocks(x, None), args.rounds)
        feats = bb._blocks(x, None)
        collapse = _median_s(
            lambda: [bb.depth_collapse[i](f) for i, f in zip(bb.out_indices, feats)], args.rounds)
    print(f'{args.config}, {args.size} x {args.size}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads')
    print('| part of a key slice | s | share |')
    print('|---|---|---|')
    rest = per_key - blocks - collapse
    for name, t in ((f'dense blocks on its {bb.num_slices}-slice stack', blocks),
                    ('depth-collapsing convs', collapse), ('neck, heads and the rest', rest),
                    ('the key slice (predict_slices)', per_key)):
        print(f'| {name} | {t:.2f} | {100 * t / per_key:.0f}% |')


if __name__ == '__main__':
    main()
