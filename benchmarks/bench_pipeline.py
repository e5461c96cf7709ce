"""Training-pipeline throughput: samples/s of the 7-slice 512 x 512 pipeline with augmentation.

Synthetic DeepLesion at 512 x 512, the config's train pipeline (slice loading with interpolation,
windowing, resize, flip, shift/scale/rotate, packing), through a PyTorch DataLoader.

    .venv/bin/python benchmarks/bench_pipeline.py [--workers 0 2] [--samples 200]
"""
import argparse
import os.path as osp
import sys
import tempfile
import time

import cv2
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import markdown_table  # noqa: E402

import acsdet  # noqa: E402,F401
from acsdet.datasets.deeplesion_coco import convert_deeplesion  # noqa: E402
from acsdet.datasets.synthetic import make_synthetic_deeplesion  # noqa: E402
from mmdet.registry import DATASETS  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config', default=osp.join(ROOT, 'configs', 'deeplesion_acs_7slice.py'))
    p.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    p.add_argument('--samples', type=int, default=200)
    p.add_argument('--num-series', type=int, default=40)
    args = p.parse_args(argv)
    init_default_scope('mmdet')
    root = tempfile.mkdtemp(prefix='acsdet-pipe-')
    make_synthetic_deeplesion(root, args.num_series, seed=0, image_size=512, context_mm=10)
    convert_deeplesion(root, osp.join(root, 'annotations'), splits=['train'])
    cfg = Config.fromfile(args.config)
    ds_cfg = dict(cfg.train_dataloader.dataset)
    ds_cfg.update(data_root=root + '/')
    dataset = DATASETS.build(ds_cfg)
    rows = []
    for workers in args.workers:
        sampler = torch.utils.data.RandomSampler(
            dataset, replacement=True, num_samples=args.samples + 10 * max(workers, 1))
        # as MMEngine's runner sets up workers (env_cfg.mp_cfg.opencv_num_threads=0)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=1,
            sampler=sampler,
            num_workers=workers,
            collate_fn=pseudo_collate,
            persistent_workers=False,
            worker_init_fn=lambda _: cv2.setNumThreads(0))
        it = iter(loader)
        for _ in range(5 * max(workers, 1)):  # warm-up: worker start-up, first decodes
            next(it)
        t0 = time.perf_counter()
        n = 0
        for _ in it:
            n += 1
        dt = time.perf_counter() - t0
        rows.append([str(workers), str(n), f'{n / dt:.1f}'])
    print(f'Train pipeline ({len(dataset)} key slices, 7 slices, 512x512, augmentation on), '
          f'{torch.get_num_threads()} torch threads')
    print(markdown_table(['DataLoader workers', 'samples', 'samples/s'], rows))


if __name__ == '__main__':
    main()
