"""Test a detector and print the DeepLesion FROC table (MMDetection conventions).

    acsdet test CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show-dir DIR]
        [--data-root DIR] [--slice-cache DIR] [--cfg-options key=value ...]

CONFIG: a config file or a shipped name. Writes froc.json, froc_table.txt and froc_curve.png
into the work dir; --out dumps the predictions (score them later with ``acsdet froc``);
--show-dir writes every key slice with predicted boxes/masks and the ground-truth RECIST.
Data-parallel: ``acsdet dist-test CONFIG CHECKPOINT NUM_PROCS``.
"""
import argparse
import os.path as osp
from typing import Optional

from .common import add_runner_args, parse_runner_args, require_mmcv_ops


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description='Test a detector; print the FROC table')
    p.add_argument('config', help='config file or shipped name')
    p.add_argument('checkpoint')
    p.add_argument('--work-dir', help='where the FROC files and logs go')
    p.add_argument('--out', help='dump predictions to this .pkl file')
    p.add_argument('--show-dir', help='write visualised key slices here')
    p.add_argument('--show-score-thr', type=float, default=0.3)
    add_runner_args(p)
    return p


def parse_args(argv=None, prog: Optional[str] = None):
    return parse_runner_args(build_parser(prog), argv)


def build_cfg(args):
    from ..engine.cli import load_config
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


def main(argv=None, prog: Optional[str] = None):
    """Test; returns the metrics."""
    args = parse_args(argv, prog)
    require_mmcv_ops(prog or 'acsdet')
    from mmengine.dist import is_main_process

    import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)

    from ..engine.cli import build_runner, load_checkpoint_strictly
    from ..engine.dist import finish_distributed
    cfg = build_cfg(args)
    runner = build_runner(cfg)
    load_checkpoint_strictly(runner, cfg.checkpoint)
    metrics = runner.test()
    table = osp.join(cfg.work_dir, 'froc_table.txt')
    if is_main_process() and osp.isfile(table):  # rank 0 wrote it; one printout
        with open(table) as f:
            print('\n' + f.read())
        print(f'FROC files: {cfg.work_dir}/froc.json, froc_table.txt, froc_curve.png')
    finish_distributed()
    return metrics


def cli(argv=None, prog: Optional[str] = None) -> int:
    main(argv, prog)
    return 0
