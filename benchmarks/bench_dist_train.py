#!/usr/bin/env python
"""Training throughput of 1 process against 2 data-parallel processes (tools/dist_train.sh).

    python benchmarks/bench_dist_train.py [--config CONFIG] [--data-root DIR] [--iters 20]
        [--repeats 2] [--threads N]

Three runs of the config's training loop, each for ``--iters`` iterations of one epoch with
validation off: one process with batch B using all ``--threads`` threads; one process with
batch 2B (the effective batch of the two-process run); two processes (torchrun, gloo on CPU)
with batch B each and ``threads / 2`` threads each. Seconds per iteration are the median of the
iterations MMEngine logs after the first two (warm-up), repeated ``--repeats`` times with the
runs interleaved; images/s = effective batch / (s/iteration). Without ``--data-root`` a small
synthetic DeepLesion (192 x 192) is generated in a temporary folder.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from benchmarks._common import markdown_table  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = 'configs/demo/deeplesion_acs_7slice_demo.py'


def synthetic_data(folder: str) -> str:
    from acsdet.preparation.deeplesion_coco import convert_deeplesion
    from acsdet.testing.synthetic import make_synthetic_deeplesion
    make_synthetic_deeplesion(
        folder, num_series=48, seed=7, image_size=192, context_mm=6, lesion_mm=(12, 50))
    convert_deeplesion(folder, osp.join(folder, 'annotations'))
    return folder


def run(config, data_root, work_dir, procs, batch, threads, iters, port):
    """One training run; returns the seconds of each logged iteration after the warm-up."""
    opts = [
        '--work-dir', work_dir, '--data-root', data_root, '--cfg-options',
        f'train_dataloader.batch_size={batch}',
        f'train_dataloader.dataset.indices={iters * batch * procs}', 'train_cfg.max_epochs=1',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None',
        'default_hooks.checkpoint.save_best=None', 'default_hooks.checkpoint.interval=1000',
        'default_hooks.logger.interval=1'
    ]
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHON=sys.executable,
        MASTER_PORT=str(port))
    if procs == 1:
        cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config] + opts
    else:
        cmd = ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), config, str(procs)] + opts
    subprocess.run(
        cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scalars = sorted(
        osp.join(d, f) for d, _, files in os.walk(work_dir) for f in files if f == 'scalars.json')
    with open(scalars[-1]) as f:
        times = [json.loads(line)['time'] for line in f if '"time"' in line]
    if len(times) < 3:
        raise RuntimeError(f'{work_dir}: only {len(times)} iterations logged')
    return times[2:]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=DEFAULT_CONFIG)
    p.add_argument('--data-root')
    p.add_argument('--batch', type=int, default=2, help='images per process')
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--threads', type=int, default=os.cpu_count())
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data_root = args.data_root or synthetic_data(osp.join(tmp, 'data'))
        half = max(1, args.threads // 2)
        setups = [  # (label, processes, batch per process, threads per process)
            (f'1 process x {args.batch} images, {args.threads} threads', 1, args.batch,
             args.threads),
            (f'1 process x {2 * args.batch} images, {args.threads} threads', 1, 2 * args.batch,
             args.threads),
            (f'2 processes x {args.batch} images, {half} thread(s) each', 2, args.batch, half),
        ]
        times = {s[0]: [] for s in setups}
        for r in range(args.repeats):
            for i, (label, procs, batch, threads) in enumerate(setups):
                work = osp.join(tmp, f'work_{r}_{i}')
                times[label] += run(args.config, data_root, work, procs, batch, threads, args.iters,
                                    29700 + 10 * r + i)
        rows, base = [], None
        for label, procs, batch, _ in setups:
            s_it = statistics.median(times[label])
            ips = procs * batch / s_it
            base = base or ips
            rows.append([
                label, procs * batch, f'{s_it:.3f}', f'{1 / s_it:.3f}', f'{ips:.2f}',
                f'{ips / base:.2f}x'
            ])
    print(f'{args.config}, {args.iters} iterations x {args.repeats} repeats, {os.cpu_count()} CPUs')
    print(
        markdown_table([
            'run', 'images / iteration', 's / iteration', 'iterations / s', 'images / s',
            'images/s vs first row'
        ], rows))


if __name__ == '__main__':
    main()
