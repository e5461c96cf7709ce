"""Convert a released M3DV/AlignShift DeepLesion checkpoint into an acsdet checkpoint.

    acsdet import SRC DST [--arch 2d|tsm|alignshift|a3d] [--config CONFIG]
    python tools/model_converters/m3dv_to_acsdet.py SRC DST ...  (the same)

SRC: a checkpoint of github.com/M3DV/AlignShift (e.g. ``alignshift_7slice.pth``). The
architecture and the slice count are read from its keys (and TSM vs AlignShift from the config
text in its meta, or ``--arch``); DST is written for the shipped config
``m3dv/{arch}_{D}slice``, which is printed, with the authors' parameters their model never uses,
and carries that config. Then:

    acsdet test m3dv/alignshift_7slice DST --data-root data/deeplesion
    acsdet infer DST scan.nii.gz --out-dir out
"""
import argparse
import sys
from typing import Optional

#: The architectures (acsdet.engine.m3dv_checkpoint.ARCHS, kept here so that --help loads no
#: torch; a test checks they agree).
ARCHS = ('2d', 'tsm', 'alignshift', 'a3d')


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n\n')[0])
    p.add_argument('src', help="the authors' checkpoint (.pth)")
    p.add_argument('dst', help='the acsdet checkpoint to write')
    p.add_argument(
        '--arch', choices=ARCHS, help='the architecture, if the keys and meta do not tell')
    p.add_argument('--config', help='the acsdet config (default: the shipped m3dv/{arch}_{D}slice)')
    return p


def main(argv=None, prog: Optional[str] = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.config:
        from .common import resolve_config_arg
        args.config = resolve_config_arg(build_parser(prog), args.config)
    import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
    from acsdet.engine.m3dv_checkpoint import M3DVCheckpointError, convert_m3dv_checkpoint
    from acsdet.utils.errors import cli_message
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


cli = main
