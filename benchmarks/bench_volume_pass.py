#!/usr/bin/env python
"""The volumetric backbone pass alone (``TruncatedDenseNet.forward_volume``: stem, dense blocks,
transitions, depth collapse) of the full ``deeplesion_acs_7slice.py`` backbone over a synthetic
``L x 512 x 512`` volume, float32 and bfloat16 autocast, with and without ``channels_last_3d``
features: seconds a pass (median of interleaved rounds), seconds a slice, and the largest
feature difference to the float32 NCDHW pass (relative to its largest value).

    python benchmarks/bench_volume_pass.py [--slices 20] [--size 512] [--rounds 3]

Random weights and BatchNorm statistics (the work is a trained model's). Run from an older
checkout it times what that checkout has (no ``channels_last`` argument: its one layout).
"""
import argparse
import inspect
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import machine, time_interleaved_ms  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def build_backbone(config: str):
    from mmengine.config import Config

    import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
    from mmdet.registry import MODELS
    cfg = Config.fromfile(config).model.backbone
    cfg.init_cfg = None
    torch.manual_seed(0)
    bb = MODELS.build(cfg).eval()
    for m in bb.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return bb


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', default=osp.join(ROOT, 'configs/deeplesion_acs_7slice.py'))
    p.add_argument('--slices', type=int, default=20)
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--depth-chunk', type=int, default=32)
    p.add_argument('--rounds', type=int, default=3)
    args = p.parse_args(argv)
    bb = build_backbone(args.config)
    x = torch.randn(1, args.slices, args.size, args.size)
    layouts = [None]
    if 'channels_last' in inspect.signature(bb.forward_volume).parameters:
        layouts = [False, True]
    runs, outs = {}, {}
    for precision in ('fp32', 'bf16'):
        for cl in layouts:
            name = f'{precision}, ' + {None: 'its layout', False: 'NCDHW', True: 'NDHWC'}[cl]
            kw = {} if cl is None else dict(channels_last=cl)

            def run(precision=precision, kw=kw, name=name):
                with torch.no_grad(), torch.autocast(
                        'cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
                    outs[name] = bb.forward_volume(x, depth_chunk=args.depth_chunk, **kw)

            runs[name] = run
    ms = time_interleaved_ms(runs, 'cpu', warmup=1, rounds=args.rounds)
    ref = outs[next(iter(outs))]
    print(f'{machine()}; {args.slices} x {args.size} x {args.size}, {osp.basename(args.config)}')
    print('| precision, layout | s / pass | s / slice | max rel. difference |')
    print('|---|---|---|---|')
    for name, t in ms.items():
        diff = max(
            ((a.float() - b).abs().max() / b.abs().max()).item() for a, b in zip(outs[name], ref))
        print(f'| {name} | {t / 1e3:.2f} | {t / 1e3 / args.slices:.3f} | {diff:.1e} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
