#!/usr/bin/env python
"""Train a detector (MMDetection conventions).

    python tools/train.py configs/deeplesion_acs_7slice.py [--work-dir DIR] [--resume [CKPT]]
        [--amp] [--data-root DIR] [--slice-cache DIR] [--auto-scale-lr]
        [--cfg-options key=value ...]

Multi-GPU: tools/dist_train.sh CONFIG GPUS [arguments above].
"""
import argparse

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import acsdet  # noqa: F401  (registers acsdet, installs the checkpoint loader)
from acsdet.engine.cli import add_common_args, enable_amp, load_config, parse_common, resolve_resume
from acsdet.engine.dist import finish_distributed, setup_distributed


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a detector')
    p.add_argument('config', help='train config file path')
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
    add_common_args(p)
    return parse_common(p, argv)


def build_cfg(args) -> Config:
    cfg = load_config(args.config, args.launcher, args.cfg_options, args.data_root, args.work_dir,
                      args.slice_cache)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    resolve_resume(cfg, args.resume)
    return cfg


def main(argv=None):
    cfg = build_cfg(parse_args(argv))
    setup_distributed(cfg)  # gloo on machines without CUDA, where MMEngine's launchers fail
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    finish_distributed()
    return runner


if __name__ == '__main__':
    main()
