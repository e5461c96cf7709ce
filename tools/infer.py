#!/usr/bin/env python
"""Detect lesions in patients' CTs with a trained acsdet model.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...] --out-dir DIR [--device cpu]
        [--score-thr 0.5] [--batch-size 4] [--slices START:END] [--save-masks] [--save-overlays]
        [--series UID] [--spacing MM --slice-thickness MM | --dl-info DL_info.csv]

INPUT: a DICOM folder (one series, or --series UID), a NIfTI / NRRD / MetaImage file, or a
DeepLesion PNG series folder. Each case goes to DIR/<case>/: lesions.json, lesions.csv,
report.html, with --save-masks lesions.nii.gz (a label map in the input's exact geometry) and
with --save-overlays lesion_NNN.png. A bad input is reported and skipped; the exit status is 1
if any input failed.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def _slices(text: str):
    try:
        a, b = text.split(':')
        return int(a) if a else 0, int(b) if b else None
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected START:END, got {text!r}') from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[2])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('inputs', nargs='+', metavar='INPUT')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--device', default='cpu')
    p.add_argument('--score-thr', type=float, default=0.5)
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--slices', type=_slices, help='START:END axial slices (end exclusive)')
    p.add_argument('--save-masks', action='store_true')
    p.add_argument('--save-overlays', action='store_true')
    p.add_argument('--series', help='DICOM SeriesInstanceUID when a folder holds several')
    p.add_argument('--spacing', type=float, help='pixel spacing (mm) of a DeepLesion PNG series')
    p.add_argument('--slice-thickness', type=float, help='slice interval (mm) of a PNG series')
    p.add_argument('--dl-info', help='DL_info.csv to look up a PNG series\' geometry')
    p.add_argument('--no-progress', action='store_true')
    args = p.parse_args(argv)
    if not 0 <= args.score_thr <= 1:
        p.error(f'--score-thr must be in [0, 1], got {args.score_thr}')
    if args.batch_size < 1:
        p.error(f'--batch-size must be >= 1, got {args.batch_size}')
    for path in (args.config, args.checkpoint):
        if not osp.isfile(path):
            p.error(f'no such file: {path}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from acsdet.apis import LesionDetector, write_case
    from acsdet.io import CTReadError, read_ct
    detector = LesionDetector(args.config, args.checkpoint, args.device, args.score_thr,
                              args.batch_size)
    done, failed = [], []
    for path in args.inputs:
        try:
            vol = read_ct(path, args.series, args.spacing, args.slice_thickness, args.dl_info)
            result = detector(vol, args.slices, progress=not args.no_progress)
            folder = write_case(
                result,
                args.out_dir,
                save_masks=args.save_masks,
                save_overlays=args.save_overlays,
                meta=dict(config=args.config, checkpoint=args.checkpoint))
            done.append((path, folder, len(result.lesions), result.seconds['total']))
        except (CTReadError, ValueError, OSError) as e:
            print(f'error: {e}', file=sys.stderr)
            failed.append((path, str(e)))
    print(f'\n{len(done)} case(s) done, {len(failed)} failed')
    for path, folder, n, sec in done:
        print(f'  {path}: {n} lesion(s) in {sec:.1f} s -> {osp.join(folder, "report.html")}')
    for path, why in failed:
        print(f'  {path}: FAILED: {why}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
