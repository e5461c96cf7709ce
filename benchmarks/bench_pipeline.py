"""Training-pipeline throughput: samples/s of the 7-slice 512 x 512 pipeline with augmentation.

A synthetic DeepLesion at 512 x 512 and the config's train dataloader as MMEngine's runner builds
it (batch size, shuffling sampler, workers), whole epochs with persistent workers, so every key
slice is read once an epoch as in training: the in-memory LRU only helps within a sample and
between key slices of one series, as on the real data. Three slice sources:

- ``png``: every slice decoded from its PNG (the first epoch of a training without a slice cache,
  and every epoch of one);
- ``cache, first epoch``: decoded from the PNGs and written to the disk slice cache
  (``LoadDeepLesionSlices(cache_dir=...)``);
- ``cache, later epochs``: read from the disk slice cache.

    .venv/bin/python benchmarks/bench_pipeline.py [--workers 0 2] [--num-series 150]
"""
import argparse
import copy
import os.path as osp
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import markdown_table  # noqa: E402

import acsdet.all_modules  # noqa: E402,F401  (registers acsdet's modules)
from acsdet.datasets.slices import stack_plan  # noqa: E402
from acsdet.preparation.deeplesion_coco import convert_deeplesion  # noqa: E402
from mmdet.registry import DATASETS  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def slices_per_sample(dataset, num_slices: int) -> float:
    """Mean number of distinct slices a sample reads (the PNG decodes without a cache)."""
    counts = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        plan = stack_plan(info['key_slice'], info['slice_interval'], num_slices)
        counts.append(len({j for lo, hi, w in plan for j in ((lo, ) if w == 0 else (lo, hi))}))
    return float(np.mean(counts))


def rate(loader_cfg: dict, workers: int, epochs: int) -> tuple:
    """(samples, samples/s) over ``epochs`` epochs with persistent workers (as in training), the
    first batch of each worker (start-up) excluded."""
    cfg = copy.deepcopy(loader_cfg)
    cfg.update(num_workers=workers, persistent_workers=workers > 0)
    loader = Runner.build_dataloader(cfg, seed=0)
    n, t0 = 0, None
    for _ in range(epochs):
        for i, batch in enumerate(loader):
            if t0 is None:
                if i + 1 < max(workers, 1):
                    continue
                t0 = time.perf_counter()
                continue
            n += len(batch['inputs'])
    return n, n / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config', default=osp.join(ROOT, 'configs', 'deeplesion_acs_7slice.py'))
    p.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    p.add_argument('--num-series', type=int, default=150)
    p.add_argument('--epochs', type=int, default=3, help='epochs timed for png and the cache')
    args = p.parse_args(argv)
    init_default_scope('mmdet')
    cv2.setNumThreads(0)  # as MMEngine's runner sets up (env_cfg.mp_cfg.opencv_num_threads=0)
    root = tempfile.mkdtemp(prefix='acsdet-pipe-')
    try:
        from acsdet.testing.synthetic import make_synthetic_deeplesion
        make_synthetic_deeplesion(root, args.num_series, seed=0, image_size=512, context_mm=10)
        convert_deeplesion(root, osp.join(root, 'annotations'), splits=['train'])
        cfg = Config.fromfile(args.config)
        loader_cfg = cfg.train_dataloader.to_dict()
        loader_cfg['dataset'].update(data_root=root + '/')
        load_step = loader_cfg['dataset']['pipeline'][0]
        assert load_step['type'] == 'LoadDeepLesionSlices', load_step
        dataset = DATASETS.build(loader_cfg['dataset'])
        per_sample = slices_per_sample(dataset, load_step.get('num_slices', 7))
        rows = []
        for workers in args.workers:
            cache = osp.join(root, f'slice-cache-{workers}')
            runs = [('png', None, args.epochs), ('cache, first epoch', cache, 1),
                    ('cache, later epochs', cache, args.epochs)]
            for source, cache_dir, epochs in runs:
                load_step['cache_dir'] = cache_dir
                n, per_s = rate(loader_cfg, workers, epochs)
                rows.append([source, str(workers), str(n), f'{per_s:.1f}'])
        print(f'Train pipeline of {osp.relpath(args.config, ROOT)}: {len(dataset)} key slices, '
              f'batch {loader_cfg["batch_size"]}, {per_sample:.1f} distinct slices a sample, '
              f'512 x 512, augmentation on')
        print(markdown_table(['slices from', 'DataLoader workers', 'samples', 'samples/s'], rows))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
