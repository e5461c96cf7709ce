"""Write a synthetic dataset in the exact DeepLesion layout (PNG series, DL_info.csv, truth masks).

    acsdet convert synthetic --out data/synthetic --num-series 40 --seed 0
"""
import argparse
import time
from typing import Optional


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument('--out', required=True, help='output folder (Images_png/, DL_info.csv, ...)')
    p.add_argument('--num-series', type=int, required=True)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--image-size', type=int, default=512)
    p.add_argument(
        '--context-mm',
        type=float,
        default=30.0,
        help='slices kept on each side of the key slices, in mm (DeepLesion: about 30)')
    p.add_argument(
        '--lesion-mm',
        type=float,
        nargs=2,
        default=(3.0, 60.0),
        metavar=('MIN', 'MAX'),
        help='range of lesion long diameters in mm (default 3 60, as DeepLesion)')
    p.add_argument('--noisy-fraction', type=float, default=0.03)
    p.add_argument(
        '--lesion-maps',
        action='store_true',
        help='also lesions_3d/<series>.nii.gz: every lesion in 3D (ground truth for '
        'acsdet froc3d)')
    return p


def main(argv=None, prog: Optional[str] = None):
    args = build_parser(prog).parse_args(argv)
    from ..testing.synthetic import make_synthetic_deeplesion
    t0 = time.time()
    s = make_synthetic_deeplesion(
        args.out,
        args.num_series,
        args.seed,
        args.image_size,
        args.context_mm,
        progress=True,
        noisy_fraction=args.noisy_fraction,
        lesion_mm=tuple(args.lesion_mm),
        lesion_maps=args.lesion_maps)
    print(f'wrote {s["series"]} series, {s["key_slices"]} key slices, {s["lesions"]} lesions '
          f'({s["noisy"]} possibly noisy; per split {s["per_split"]}) to {args.out} '
          f'in {time.time() - t0:.1f} s')


def cli(argv=None, prog: Optional[str] = None) -> int:
    main(argv, prog)
    return 0
