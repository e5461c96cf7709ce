#!/usr/bin/env python
"""Patient-CT inference: per-slice (one D-slice stack per key slice) against volumetric (one 3D
pass over the CT), seconds per CT, the share spent outside the model (reading, resampling, the
test pipeline, grouping, writing the outputs) and the process's peak memory.

    python benchmarks/bench_infer.py [--config CONFIG [--checkpoint CKPT]] ...
        [--ct 200x1 60x5] [--modes per-slice volumetric] [--per-slice-keys 8] [--device cpu]
        [--allocator system huge-pages huge-pages+reuse]

Every (config, CT, mode) runs in a fresh process (exact peak memory: the resident-set high-water
mark on CPU, the allocator's peak on CUDA). ``--ct NxMM``: a synthetic 512 x 512 phantom CT of N
slices MM mm apart, written as NIfTI and read back as a user's file would be. Per-slice runs on a
large model take minutes a CT: ``--per-slice-keys K`` times K key slices in the middle of the CT
and scales the model time to all N (said in the table). Without a checkpoint the config's model
runs with random weights (the speed is the same), keeping at most ``--max-per-slice`` detections
a key slice (default 5, as a trained model keeps a few: random weights would keep about 50 at
score 0.5, each with a mask pasted at 512 x 512). ``--allocator`` (CPU): how the process gets
its tensors' memory (:mod:`acsdet.utils.allocator`): ``system`` (torch's and glibc's defaults),
``huge-pages`` (what ``acsdet infer`` does by default), ``huge-pages+reuse`` (``acsdet infer
--reuse-memory``); each in its own process, one row each.
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from acsdet.utils.allocator import HUGE_PAGES_ENV

DEFAULT_CONFIGS = ['configs/demo/deeplesion_acs_7slice_demo.py', 'configs/deeplesion_acs_7slice.py']


def phantom_nifti(folder: str, n_slices: int, spacing_mm: float, size: int = 512) -> str:
    """A synthetic ``size`` x ``size`` CT of ``n_slices`` slices ``spacing_mm`` apart, NIfTI."""
    import SimpleITK as sitk

    from acsdet.io import read_ct, volume_to_image
    from acsdet.testing.synthetic import make_synthetic_deeplesion
    make_synthetic_deeplesion(folder, num_series=1, seed=3, image_size=size, context_mm=60)
    root = osp.join(folder, 'Images_png')
    series = osp.join(root, sorted(os.listdir(root))[0])
    vol = read_ct(series, dl_info=osp.join(folder, 'DL_info.csv'))
    reps = int(np.ceil(n_slices / len(vol.hu)))
    vol.hu = np.concatenate([vol.hu] * reps)[:n_slices]
    vol.z_positions = np.arange(n_slices) * spacing_mm
    vol.spacing = (spacing_mm, vol.spacing[1], vol.spacing[2])
    path = osp.join(folder, f'phantom_{n_slices}x{spacing_mm:g}.nii.gz')
    sitk.WriteImage(volume_to_image(vol), path, True)
    return path


def random_checkpoint(config: str, folder: str) -> str:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
    from mmdet.registry import MODELS
    cfg = Config.fromfile(config)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    path = osp.join(folder, osp.basename(config) + '.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def add_max_per_slice(p: argparse.ArgumentParser):
    """``--max-per-slice``: the detections a key slice keeps (a trained model's few)."""
    p.add_argument(
        '--max-per-slice',
        type=int,
        default=5,
        help='detections kept per key slice (test_cfg.rcnn.max_per_img): a trained model keeps a '
        "few; random weights would keep up to the config's 50, each with a mask")


def capped_config(config: str, max_per_slice: int):
    """``config`` loaded, its detections capped at ``max_per_slice`` a key slice."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    cfg.model.test_cfg.rcnn.max_per_img = max_per_slice
    return cfg


#: ``--allocator`` -> (THP_MEM_ALLOC_ENABLE for the child, reuse freed memory).
ALLOCATORS = {'system': ('0', False), 'huge-pages': ('1', False), 'huge-pages+reuse': ('1', True)}


def run_one(a) -> dict:
    """One (config, CT, mode) in this process; the JSON line the parent reads."""
    from acsdet.apis import LesionDetector, write_case
    from acsdet.io import read_ct
    from acsdet.utils.allocator import reuse_freed_memory
    if ALLOCATORS[a.allocator][1] and not reuse_freed_memory():
        raise SystemExit('--allocator huge-pages+reuse: the C library is not glibc')
    det = LesionDetector(
        capped_config(a.config, a.max_per_slice),
        a.checkpoint,
        a.device,
        score_thr=0.5,
        batch_size=a.batch_size,
        volumetric=a.mode == 'volumetric',
        depth_chunk=a.depth_chunk,
        precision=getattr(a, 'precision', 'fp32'))
    if a.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    vol = read_ct(a.ct)
    n = len(vol.hu)
    keys = n if a.mode == 'volumetric' or not a.per_slice_keys else min(a.per_slice_keys, n)
    start = (n - keys) // 2
    res = det(vol, (start, start + keys))
    with tempfile.TemporaryDirectory() as out:
        write_case(res, out, 'case', save_masks=True)
    total = time.perf_counter() - t0
    model = res.seconds['model']
    peak = (
        torch.cuda.max_memory_allocated() / 2**20 if a.device.startswith('cuda') else
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return dict(
        slices=n,
        keys_timed=keys,
        model_s=model * n / keys,
        outside_s=total - model,
        total_s=total - model + model * n / keys,
        peak_mib=peak)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', action='append', help='repeatable; default: demo and ACS 7-slice')
    p.add_argument('--checkpoint', action='append', help='for the first --config(s) (else random)')
    p.add_argument('--ct', nargs='+', default=['200x1', '60x5'], help='NxMM: N slices MM apart')
    p.add_argument('--modes', nargs='+', default=['per-slice', 'volumetric'])
    p.add_argument('--per-slice-keys', type=int, default=0)
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--device', default='cpu')
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--depth-chunk', type=int, default=32)
    p.add_argument('--precision', default='fp32', choices=['fp32', 'bf16'])
    add_max_per_slice(p)
    p.add_argument('--allocator', nargs='+', default=['huge-pages'], choices=sorted(ALLOCATORS))
    p.add_argument('--one', nargs=3, metavar=('CKPT', 'CT', 'MODE'), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        args.checkpoint, args.ct, args.mode = args.one
        args.config, args.allocator = args.config[0], args.allocator[0]
        print(json.dumps(run_one(args)))
        return
    configs = args.config or DEFAULT_CONFIGS
    ckpts = (args.checkpoint or []) + [None] * len(configs)
    print(f'device {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}; '
          f'{args.size} x {args.size} slices; volumetric depth chunk {args.depth_chunk}')
    print('| config | CT | mode | allocator | s / CT | model s | outside the model | peak MiB | '
          'time vs the first row |')
    print('|---|---|---|---|---|---|---|---|---|')
    with tempfile.TemporaryDirectory() as tmp:
        cts = {}
        for spec in args.ct:
            n, mm = spec.split('x')
            cts[spec] = phantom_nifti(osp.join(tmp, spec), int(n), float(mm), args.size)
        for config, ckpt in zip(configs, ckpts):
            ckpt = ckpt or random_checkpoint(config, tmp)
            for spec, ct in cts.items():
                base = None
                for mode, allocator in [(m, al) for m in args.modes for al in args.allocator]:
                    cmd = [
                        sys.executable,
                        osp.abspath(__file__), '--config', config, '--device', args.device,
                        '--batch-size',
                        str(args.batch_size), '--depth-chunk',
                        str(args.depth_chunk), '--precision', args.precision, '--per-slice-keys',
                        str(args.per_slice_keys), '--max-per-slice',
                        str(args.max_per_slice), '--allocator', allocator, '--one', ckpt, ct, mode
                    ]
                    # torch reads THP_MEM_ALLOC_ENABLE when it starts: the child's environment
                    env = dict(os.environ, **{HUGE_PAGES_ENV: ALLOCATORS[allocator][0]})
                    out = subprocess.run(
                        cmd, check=True, capture_output=True, text=True, env=env).stdout
                    r = json.loads(out.strip().splitlines()[-1])
                    base = base if base is not None else r['total_s']
                    note = (f' ({r["keys_timed"]} of {r["slices"]} key slices timed, scaled)'
                            if r['keys_timed'] < r['slices'] else '')
                    print(
                        f'| `{osp.basename(config)}` | {spec} mm | {mode}{note} | {allocator} | '
                        f'{r["total_s"]:.1f} | {r["model_s"]:.1f} | '
                        f'{100 * r["outside_s"] / r["total_s"]:.1f}% | {r["peak_mib"]:.0f} | '
                        f'{r["total_s"] / base:.2f}x |',
                        flush=True)


if __name__ == '__main__':
    main()
