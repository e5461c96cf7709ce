#!/usr/bin/env python
"""The GPU checks of issue 36, on a machine with only torch (acsdet's operators and converters
import nothing else; the DenseNet is read from its file, not through the MMDetection package).

    python benchmarks/gpu_check.py [--device cuda] [--size 512] [--slices 300] [--out FILE.json]

1. ACSConv against 2.5D per layer (forward + backward of one 3 x 3 conv, 128 -> 32 channels on a
   7-slice stack at the first dense block's 128 x 128), and the truncated DenseNet-121 backbone
   with its depth-collapsing convs, forward + backward, time and peak memory at 7 x 512 x 512,
   batch 2 (the paper, Table VI: ACS 1.67x the time and 1.32x the memory of 2.5D).
2. The backbone + a 3 x 3 256-channel RPN-like conv of a whole ``--slices`` x 512 x 512 CT in one
   volumetric pass (no grad, bfloat16 autocast where the GPU has it), time and peak memory.

Without a GPU it runs on CPU at the sizes given (``--size 64 --slices 24`` is a quick dry run)
and says so. Prints a Markdown table and writes JSON with ``--out``.
"""
import argparse
import importlib.util
import json
import os.path as osp
import sys
import time

import torch
import torch.nn as nn

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def _densenet_module():
    """``acsdet/models/backbones/densenet.py`` by path (its package imports MMDetection)."""
    spec = importlib.util.spec_from_file_location(
        'acsdet_densenet', osp.join(ROOT, 'acsdet', 'models', 'backbones', 'densenet.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Backbone3D(nn.Module):
    """The truncated DenseNet-121 (3 blocks) converted to ``mode``, each block's output collapsed
    along depth by a ``Conv3d(C, C, (D, 1, 1))``: ``(N, 3, D, H, W)`` -> 3 feature maps."""

    def __init__(self, mode: str, num_slices: int):
        super().__init__()
        from acsdet.converters import convert
        dn = _densenet_module()
        self.features = convert(dn.densenet_features(), mode)
        self.collapse = nn.ModuleList(
            nn.Conv3d(c, c, (num_slices, 1, 1), bias=False) for c in dn.dense_block_channels())

    def forward(self, x):
        outs, i = [], 0
        for name, m in self.features.named_children():
            x = m(x)
            if name.startswith('denseblock'):
                outs.append(self.collapse[i](x))
                i += 1
        return outs


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def measure(fn, device, rounds=3):
    """``(median seconds, peak MiB above the start)`` of ``fn()``."""
    fn()  # warm-up (cuDNN autotuning, allocations)
    _sync(device)
    times = []
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    peak = ((torch.cuda.max_memory_allocated(device) - base) /
            2**20 if device.type == 'cuda' else float('nan'))
    return sorted(times)[len(times) // 2], peak


def layer_check(device, size):
    from acsdet.ops import ACSConv, Conv2_5d
    h = size // 4
    out = {}
    for name, cls in (('2.5d', Conv2_5d), ('acs', ACSConv)):
        conv = cls(128, 32, 3, padding=1, bias=False).to(device)
        x = torch.randn(2, 128, 7, h, h, device=device, requires_grad=True)

        def step():
            conv(x).sum().backward()

        out[name] = measure(step, device)
    return out


def backbone_check(device, size, num_slices=7, batch=2):
    out = {}
    for mode in ('2.5d', 'acs'):
        torch.manual_seed(0)
        model = Backbone3D(mode, num_slices).to(device).train()
        x = torch.randn(batch, 3, num_slices, size, size, device=device)

        def step(model=model):
            model.zero_grad(set_to_none=True)
            sum(f.float().sum() for f in model(x)).backward()

        out[mode] = measure(step, device, rounds=3)
        out[mode + ' params'] = sum(p.numel() for p in model.parameters())
        del model
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return out


def volume_check(device, size, slices):
    """The ACS backbone over a whole CT (zero padding at the volume's ends, the volumetric
    pass's), plus one 256-channel 3 x 3 conv on the stride-4 map of every slice, no grad."""
    model = Backbone3D('acs', 1).to(device).eval()  # collapse of depth 1: every slice kept
    rpn = nn.Conv2d(256, 256, 3, padding=1).to(device).eval()
    reduce = nn.Conv2d(model.collapse[0].out_channels, 256, 1).to(device).eval()
    x = torch.randn(1, 3, slices, size, size, device=device)
    bf16 = device.type == 'cuda' and torch.cuda.is_bf16_supported()

    @torch.no_grad()
    def run():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            feats = model(x)
            f = feats[0][0].transpose(0, 1)  # (slices, C, H/4, W/4)
            for i in range(0, f.shape[0], 32):
                rpn(reduce(f[i:i + 32]))

    sec, peak = measure(run, device, rounds=1)
    return dict(seconds=sec, peak_mib=peak, bf16=bf16)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--slices', type=int, default=300)
    p.add_argument('--out')
    a = p.parse_args(argv)
    device = torch.device(a.device)
    where = (
        torch.cuda.get_device_name(device) if device.type == 'cuda' else 'no GPU available: CPU')
    print(f'{where}, torch {torch.__version__}; size {a.size}, whole CT {a.slices} slices')
    layer = layer_check(device, a.size)
    bb = backbone_check(device, a.size)
    vol = volume_check(device, a.size, a.slices)
    rows = [('one 3x3 layer, fwd+bwd', layer), ('backbone 7 x S x S, batch 2, fwd+bwd', bb)]
    print('| what | 2.5D s | ACS s | ACS / 2.5D time | 2.5D MiB | ACS MiB | ACS / 2.5D memory |')
    print('|---|---|---|---|---|---|---|')
    report = dict(device=where, size=a.size, slices=a.slices)
    for name, r in rows:
        (t25, m25), (tacs, macs) = r['2.5d'], r['acs']
        print(f'| {name} | {t25:.4f} | {tacs:.4f} | {tacs / t25:.2f}x | {m25:.0f} | {macs:.0f} | '
              f'{macs / m25 if m25 == m25 else float("nan"):.2f}x |')
        report[name] = dict(
            time_ratio=tacs / t25,
            memory_ratio=macs / m25 if m25 == m25 else None,
            seconds={
                '2.5d': t25,
                'acs': tacs
            },
            mib={
                '2.5d': m25,
                'acs': macs
            })
    assert bb['2.5d params'] == bb['acs params']  # the same parameters, as the paper says
    print(f'whole CT ({a.slices} x {a.size} x {a.size}), ACS backbone + RPN-sized conv, one pass: '
          f'{vol["seconds"]:.1f} s, peak {vol["peak_mib"]:.0f} MiB'
          f'{" (bfloat16)" if vol["bf16"] else ""}')
    report['whole CT'] = vol
    if a.out:
        with open(a.out, 'w') as f:
            json.dump(report, f, indent=1)
    return report


if __name__ == '__main__':
    main()
