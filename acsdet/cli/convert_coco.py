"""Convert DeepLesion (DL_info.csv + Images_png/) to COCO files with GrabCut weak masks.

    acsdet convert coco --data-root data/deeplesion --out-dir data/deeplesion/annotations \
        [--workers 2] [--splits train val test]

Writes deeplesion_{train,val,test}.json and deeplesion_conversion_report.json (skipped rows and
warnings with their CSV line numbers and reasons). Existing files are replaced, as one set, only
after a successful run; an output folder that cannot be written fails before any work.
"""
import argparse
from typing import Optional

#: GrabCut input windows by name (acsdet.preparation.deeplesion_coco.WINDOWS; a test checks).
WINDOWS = ('dicom', 'wide', 'soft')


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n\n')[0])
    p.add_argument('--data-root', required=True, help='folder with DL_info.csv and Images_png/')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--splits', nargs='+', default=['train', 'val', 'test'])
    p.add_argument('--workers', type=int, default=1)
    p.add_argument(
        '--window',
        default='dicom',
        help=f'GrabCut input windowing: one of {WINDOWS} or MIN,MAX in HU')
    p.add_argument('--dl-info', help='DL_info.csv (default: DATA_ROOT/DL_info.csv)')
    p.add_argument('--images-dir', help='Images_png folder (default: DATA_ROOT/Images_png)')
    return p


def main(argv=None, prog: Optional[str] = None):
    p = build_parser(prog)
    args = p.parse_args(argv)
    from ..preparation.deeplesion_coco import check_window, convert_deeplesion
    from ..utils import check_writable_dir
    try:
        window = check_window(args.window)
    except ValueError as e:
        p.error(f'--window: {e}')
    if args.workers < 1:
        p.error(f'--workers must be >= 1, got {args.workers}')
    try:
        check_writable_dir(args.out_dir)
    except OSError as e:
        p.error(str(e))
    summary = convert_deeplesion(
        args.data_root,
        args.out_dir,
        args.splits,
        args.workers,
        window,
        progress=True,
        dl_info=args.dl_info,
        images_dir=args.images_dir)
    print(summary.report())
    print('wrote ' + ', '.join(summary.files))
    return summary


def cli(argv=None, prog: Optional[str] = None) -> int:
    main(argv, prog)
    return 0
