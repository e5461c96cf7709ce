"""ACSConv, MeanACSConv and SoftACSConv (dense kernel and three planar convolutions) vs nn.Conv3d
(1, K, K) (2.5D, same FLOPs as ACS: the floor) and (K, K, K) (3D).

The 3x3 dense-layer convolution of DenseNet-121 at 7 slices: N=2, 128 -> 32 channels, D=7,
H=W in (16, 32, 64); forward + backward (input and weight gradients). Time: median of interleaved
rounds; memory: peak above the input, each operator in a fresh process.

    .venv/bin/python benchmarks/bench_acs_conv.py [--device cuda] [--sizes 16 32 64]
        [--channels-last]
"""
import argparse
import json
import os.path as osp
import sys

import torch
import torch.nn as nn

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import machine, markdown_table, peak_mib, run_isolated, time_interleaved_ms  # noqa

from acsdet.ops import ACSConv, MeanACSConv, SoftACSConv  # noqa: E402

OPS = ('2.5D Conv3d(1,K,K)', 'ACSConv', 'MeanACSConv', 'SoftACSConv', 'SoftACSConv planar',
       '3D Conv3d(K,K,K)')


def make_layer(name, cin, cout, k=3):
    if name == OPS[0]:
        return nn.Conv3d(cin, cout, (1, k, k), padding=(0, k // 2, k // 2), bias=False)
    if name == 'ACSConv':
        return ACSConv(cin, cout, k, padding=k // 2, bias=False)
    if name == 'MeanACSConv':
        return MeanACSConv(cin, cout, k, padding=k // 2, bias=False)
    if name.startswith('SoftACSConv'):  # dense: one conv3d with the views' kernel; planar: three
        method = 'planar' if name.endswith('planar') else 'dense'
        return SoftACSConv(cin, cout, k, padding=k // 2, bias=False, method=method)
    return nn.Conv3d(cin, cout, k, padding=k // 2, bias=False)


def make_step(name, size, args, device):
    torch.manual_seed(0)
    layer = make_layer(name, args.cin, args.cout).to(device)
    x = torch.randn(args.batch, args.cin, args.slices, size, size, device=device)
    if args.channels_last:  # ACSConv's weight is 2D (4-D tensor): the input sets the layout
        if not name.startswith(('ACSConv', 'MeanACSConv', 'SoftACSConv')):
            layer = layer.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    x.requires_grad_()

    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).sum().backward()

    return step


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cpu')
    p.add_argument('--sizes', type=int, nargs='+', default=[16, 32, 64])
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--slices', type=int, default=7)
    p.add_argument('--cin', type=int, default=128)
    p.add_argument('--cout', type=int, default=32)
    p.add_argument('--rounds', type=int, default=20)
    p.add_argument(
        '--channels-last',
        action='store_true',
        help='inputs and layers in channels_last_3d (NDHWC) memory format')
    p.add_argument('--memory-of', nargs=2, metavar=('OP', 'SIZE'), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    device = torch.device(args.device)
    if args.memory_of:  # child process: one operator's peak memory
        name, size = args.memory_of
        print(json.dumps({'peak_mib': peak_mib(make_step(name, int(size), args, device), device)}))
        return
    rows = []
    for size in args.sizes:
        steps = {name: make_step(name, size, args, device) for name in OPS}
        times = time_interleaved_ms(steps, device, rounds=args.rounds)
        del steps
        mem = {}
        for name in OPS:
            if device.type == 'cuda':
                mem[name] = peak_mib(make_step(name, size, args, device), device)
            else:
                child = [
                    f'--{k}={v}' for k, v in (('batch', args.batch), ('slices', args.slices),
                                              ('cin', args.cin), ('cout', args.cout))
                ] + (['--channels-last'] if args.channels_last else [])
                mem[name] = run_isolated(__file__, child + ['--memory-of', name, size])['peak_mib']
        t0, m0 = times[OPS[0]], mem[OPS[0]]
        for name in OPS:
            rows.append([
                f'{size}x{size}', name, f'{times[name]:.2f}', f'{times[name] / t0:.2f}x',
                f'{mem[name]:.1f}', f'{mem[name] / m0:.2f}x'
            ])
    layout = 'channels_last_3d' if args.channels_last else 'contiguous (NCDHW)'
    print(f'ACSConv forward+backward on {machine()}: N={args.batch}, {args.cin}->{args.cout} ch, '
          f'D={args.slices}, K=3, {layout}')
    print(
        markdown_table(['H=W', 'operator', 'ms', 'time vs 2.5D', 'peak MiB', 'memory vs 2.5D'],
                       rows))


if __name__ == '__main__':
    main()
