#!/usr/bin/env python
"""Patient-CT inference speed: seconds per 100-slice 512 x 512 CT, and the share spent outside
the model (reading, slice sampling, the test pipeline, grouping, writing the outputs).

    python benchmarks/bench_infer.py [--config CONFIG [--checkpoint CKPT]] ... [--slices 100]
        [--device cpu]

Without a checkpoint the config's model is timed with random weights (the speed is the same).
The CT is a synthetic phantom series (512 x 512), written as NIfTI and read back as a user's
file would be.
"""
import argparse
import os.path as osp
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

DEFAULT_CONFIGS = ['configs/demo/deeplesion_acs_7slice_demo.py', 'configs/deeplesion_acs_7slice.py']


def phantom_nifti(folder: str, n_slices: int) -> str:
    """A synthetic 512 x 512 CT series of ``n_slices`` slices as NIfTI."""
    import SimpleITK as sitk

    from acsdet.io import read_ct, volume_to_image
    from acsdet.testing.synthetic import make_synthetic_deeplesion
    make_synthetic_deeplesion(folder, num_series=1, seed=3, image_size=512, context_mm=60)
    root = osp.join(folder, 'Images_png')
    import os
    series = osp.join(root, sorted(os.listdir(root))[0])
    vol = read_ct(series, dl_info=osp.join(folder, 'DL_info.csv'))
    reps = int(np.ceil(n_slices / len(vol.hu)))
    vol.hu = np.concatenate([vol.hu] * reps)[:n_slices]
    vol.z_positions = np.arange(n_slices) * vol.spacing[0]
    path = osp.join(folder, 'phantom.nii.gz')
    sitk.WriteImage(volume_to_image(vol), path, True)
    return path


def random_checkpoint(config: str, folder: str) -> str:
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import acsdet  # noqa: F401
    from mmdet.registry import MODELS
    cfg = Config.fromfile(config)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    path = osp.join(folder, osp.basename(config) + '.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--config', action='append', help='repeatable; default: demo and ACS 7-slice')
    p.add_argument('--checkpoint', action='append', help='for the first --config(s) (else random)')
    p.add_argument('--slices', type=int, default=100)
    p.add_argument('--device', default='cpu')
    p.add_argument('--batch-size', type=int, default=4)
    args = p.parse_args(argv)
    torch.set_num_threads(torch.get_num_threads())
    from acsdet.apis import LesionDetector, write_case
    configs = args.config or DEFAULT_CONFIGS
    ckpts = (args.checkpoint or []) + [None] * len(configs)  # the first configs' checkpoints
    with tempfile.TemporaryDirectory() as tmp:
        ct = phantom_nifti(osp.join(tmp, 'data'), args.slices)
        print(f'CT: {args.slices} slices of 512 x 512 (NIfTI); device {args.device}, '
              f'{torch.get_num_threads()} threads')
        print('| config | weights | s / volume | s / slice | model s | outside the model |')
        print('|---|---|---|---|---|---|')
        for config, ckpt in zip(configs, ckpts):
            weights = 'trained' if ckpt else 'random'
            ckpt = ckpt or random_checkpoint(config, tmp)
            det = LesionDetector(
                config, ckpt, args.device, score_thr=0.5, batch_size=args.batch_size)
            t0 = time.perf_counter()
            res = det(ct)
            write_case(res, osp.join(tmp, 'out'), save_masks=True, save_overlays=True)
            total = time.perf_counter() - t0
            model = res.seconds['model']
            print(
                f'| `{osp.basename(config)}` | {weights} | {total:.1f} | '
                f'{total / args.slices:.3f} | {model:.1f} | {100 * (1 - model / total):.1f}% |',
                flush=True)


if __name__ == '__main__':
    main()
