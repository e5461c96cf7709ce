"""Train a detector (MMDetection conventions).

    acsdet train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--data-root DIR]
        [--slice-cache DIR] [--auto-scale-lr] [--cfg-options key=value ...]

CONFIG: a config file or a shipped config's name (``acsdet configs``). Data-parallel:
``acsdet dist-train CONFIG NUM_PROCS [arguments above]``.
"""
import argparse
from typing import Optional

from .common import add_runner_args, parse_runner_args, require_mmcv_ops


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description='Train a detector')
    p.add_argument('config', help='config file or shipped name')
    p.add_argument('--work-dir', help='the dir to save logs and models')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision (CUDA only)')
    p.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate to the actual total batch size')
    p.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or without a value from the latest checkpoint of '
        'the work dir')
    add_runner_args(p)
    return p


def parse_args(argv=None, prog: Optional[str] = None):
    return parse_runner_args(build_parser(prog), argv)


def build_cfg(args):
    from ..engine.cli import enable_amp, load_config, resolve_resume
    cfg = load_config(args.config, args.launcher, args.cfg_options, args.data_root, args.work_dir,
                      args.slice_cache)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    resolve_resume(cfg, args.resume)
    return cfg


def main(argv=None, prog: Optional[str] = None):
    """Train; returns the runner."""
    args = parse_args(argv, prog)
    require_mmcv_ops(prog or 'acsdet')
    import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)

    from ..engine.cli import build_runner
    from ..engine.dist import finish_distributed
    runner = build_runner(build_cfg(args))
    runner.train()
    finish_distributed()
    return runner


def cli(argv=None, prog: Optional[str] = None) -> int:
    main(argv, prog)
    return 0
