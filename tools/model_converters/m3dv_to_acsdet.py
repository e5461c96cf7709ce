#!/usr/bin/env python
"""Convert a released M3DV/AlignShift DeepLesion checkpoint into an acsdet checkpoint.

    python tools/model_converters/m3dv_to_acsdet.py SRC DST [--arch 2d|tsm|alignshift|a3d]
        [--config CONFIG]

SRC: a checkpoint of github.com/M3DV/AlignShift (e.g. ``alignshift_7slice.pth``). The
architecture and the slice count are read from its keys (and TSM vs AlignShift from the config
text in its meta, or ``--arch``); DST is written for ``configs/m3dv/{arch}_{D}slice.py``, which
is printed, with the authors' parameters their model never uses. Then:

    python tools/test.py configs/m3dv/alignshift_7slice.py DST --data-root data/deeplesion
    python tools/infer.py configs/m3dv/alignshift_7slice.py DST scan.nii.gz --out-dir out
"""
import argparse
import sys

from acsdet.engine.m3dv_checkpoint import ARCHS, M3DVCheckpointError, convert_m3dv_checkpoint
from acsdet.utils.errors import cli_message


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('src', help="the authors' checkpoint (.pth)")
    p.add_argument('dst', help='the acsdet checkpoint to write')
    p.add_argument(
        '--arch', choices=ARCHS, help='the architecture, if the keys and meta do not tell')
    p.add_argument('--config', help='the acsdet config (default: configs/m3dv/{arch}_{D}slice.py)')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        report = convert_m3dv_checkpoint(args.src, args.dst, args.arch, args.config)
    except M3DVCheckpointError as e:
        print(f'error: {cli_message(e)}', file=sys.stderr)
        return 2
    print(f'{args.src}: {report["arch"]} model, {report["num_slices"]} slices')
    if report['dropped']:
        print(f'dropped {len(report["dropped"])} parameters the authors\' model never uses '
              f'(A3D fusion of convolutions built with enable_shift=False): '
              f'{", ".join(report["dropped"])}')
    print(f'wrote {args.dst} for config {report["config"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
