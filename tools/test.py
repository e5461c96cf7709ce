#!/usr/bin/env python
"""Test a detector and print the DeepLesion FROC table (MMDetection conventions).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show-dir DIR]
        [--data-root DIR] [--slice-cache DIR] [--cfg-options key=value ...]

Writes froc.json, froc_table.txt and froc_curve.png into the work dir; --out dumps the
predictions (score them later with tools/froc_eval.py); --show-dir writes every key slice with
predicted boxes/masks and the ground-truth RECIST. Multi-GPU: tools/dist_test.sh.
"""
import argparse
import os.path as osp

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import acsdet  # noqa: F401
from acsdet.engine.cli import add_common_args, load_checkpoint_strictly, load_config, parse_common
from acsdet.engine.dist import finish_distributed, setup_distributed


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Test a detector; print the FROC table')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--work-dir', help='where the FROC files and logs go')
    p.add_argument('--out', help='dump predictions to this .pkl file')
    p.add_argument('--show-dir', help='write visualised key slices here')
    p.add_argument('--show-score-thr', type=float, default=0.3)
    add_common_args(p)
    return parse_common(p, argv)


def build_cfg(args) -> Config:
    if not osp.isfile(args.checkpoint):  # before building datasets and the model
        raise SystemExit(f'checkpoint {args.checkpoint}: no such file')
    cfg = load_config(args.config, args.launcher, args.cfg_options, args.data_root, args.work_dir,
                      args.slice_cache)
    cfg.checkpoint = args.checkpoint  # loaded strictly in main(), not through load_from
    cfg.load_from = None
    cfg.resume = False
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator,
                                                  list) else [cfg.test_evaluator]
    for ev in evaluators:
        if ev.get('type') == 'FROCMetric':
            ev.output_dir = cfg.work_dir
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit('--out must be a .pkl or .pickle file')
        cfg.test_evaluator = evaluators + [
            dict(
                type='AcsdetDumpDetResults',
                out_file_path=args.out,
                inputs=[args.config, args.checkpoint])
        ]
    hooks = list(cfg.get('custom_hooks', []))
    hooks.append(dict(type='ProgressBarHook'))
    if args.show_dir:
        hooks.append(
            dict(
                type='DeepLesionVisualizationHook',
                out_dir=args.show_dir,
                score_thr=args.show_score_thr))
    cfg.custom_hooks = hooks
    return cfg


def main(argv=None):
    cfg = build_cfg(parse_args(argv))
    setup_distributed(cfg)  # gloo on machines without CUDA, where MMEngine's launchers fail
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    load_checkpoint_strictly(runner, cfg.checkpoint)
    metrics = runner.test()
    table = osp.join(cfg.work_dir, 'froc_table.txt')
    if is_main_process() and osp.isfile(table):  # rank 0 wrote it; one printout
        with open(table) as f:
            print('\n' + f.read())
        print(f'FROC files: {cfg.work_dir}/froc.json, froc_table.txt, froc_curve.png')
    finish_distributed()
    return metrics


if __name__ == '__main__':
    main()
