"""Backbone cost per 7-slice 512 x 512 image: 2.5D, ACS, 3D (I3D), A3D, TSM and AlignShift truncated
DenseNet-121.

Forward + backward of the backbone alone (``sum`` of its three outputs as the loss), batch 1:
median time of interleaved rounds, and peak memory above the model and input (each mode in a
fresh process on CPU). Parameters include the depth-collapsing convolutions. AlignShift gets a
5 mm slice thickness (its cost does not depend on the value).

    .venv/bin/python benchmarks/bench_backbone.py [--size 512] [--slices 7] [--device cuda]
"""
import argparse
import json
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import machine, markdown_table, peak_mib, run_isolated, time_interleaved_ms  # noqa

import acsdet.all_modules  # noqa: E402,F401  (registers acsdet's modules)
from mmdet.registry import MODELS  # noqa: E402

MODES = ('2.5d', 'acs', 'mean-acs', 'soft-acs', '3d', 'a3d', 'tsm', 'alignshift')


def make_step(mode, args, device):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='TruncatedDenseNet', conv_mode=mode, num_slices=args.slices))
    model.to(device).train()
    x = torch.randn(args.batch, args.slices, args.size, args.size, device=device)
    thickness = torch.full((args.batch, ), 5.0, device=device)  # ignored but by 'alignshift'

    def step():
        model.zero_grad(set_to_none=True)
        sum(o.sum() for o in model(x, thickness)).backward()

    return step, model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cpu')
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--slices', type=int, default=7)
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--modes', nargs='+', default=list(MODES))
    p.add_argument('--memory-of', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.memory_of:
        step, _ = make_step(args.memory_of, args, device)
        print(json.dumps({'peak_mib': peak_mib(step, device)}))
        return
    steps, params = {}, {}
    for mode in args.modes:
        steps[mode], model = make_step(mode, args, device)
        params[mode] = sum(q.numel() for q in model.parameters())
    times = time_interleaved_ms(steps, device, warmup=1, rounds=args.rounds)
    del steps
    mem = {}
    for mode in args.modes:
        if device.type == 'cuda':
            mem[mode] = peak_mib(make_step(mode, args, device)[0], device)
        else:
            mem[mode] = run_isolated(__file__, [
                f'--size={args.size}', f'--slices={args.slices}', f'--batch={args.batch}',
                '--memory-of', mode
            ])['peak_mib']
    base = args.modes[0]
    rows = [[
        m, f'{params[m] / 1e6:.2f} M', f'{times[m] / 1e3 / args.batch:.2f}',
        f'{times[m] / times[base]:.2f}x', f'{mem[m] / args.batch:.0f}', f'{mem[m] / mem[base]:.2f}x'
    ] for m in args.modes]
    print(f'Truncated DenseNet-121 backbones, forward+backward per {args.slices}-slice '
          f'{args.size}x{args.size} image (batch {args.batch}) on {machine()}')
    print(
        markdown_table([
            'mode', 'parameters', 's / image', f'time vs {base}', 'peak MiB / image',
            f'memory vs {base}'
        ], rows))


if __name__ == '__main__':
    main()
