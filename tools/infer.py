#!/usr/bin/env python
"""Detect lesions in patients' CTs with a trained acsdet model.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...] --out-dir DIR [--device cpu]
        [--score-thr 0.5] [--batch-size 4] [--slices START:END] [--save-masks] [--save-overlays]
        [--series UID] [--spacing MM --slice-interval MM | --dl-info DL_info.csv]
        [--volumetric [--depth-chunk N]] [--link-iou 0.5] [--link-contain 0.8] [--max-gap 1]
        [--depth-ratio 2]

INPUT: a DICOM folder (one series, or --series UID), a NIfTI / NRRD / MetaImage file, or a
DeepLesion PNG series folder. --volumetric runs the backbone once over the whole CT on the
config's slice grid (about one backbone pass per grid slice instead of D per slice; see the
README, "Volumetric inference"). Per-slice detections become 3D lesions by the grouping rule
(--link-iou, --link-contain, --max-gap, --depth-ratio; README, "Grouping detections into
lesions"). Each case goes to DIR/<case>/: lesions.json, lesions.csv, report.html, with
--save-masks lesions.nii.gz (a label map in the input's exact geometry) and with
--save-overlays lesion_NNN.png, and the manifest acsdet-case.json. <case> is the input's
base name, or <name>-<8 hex> when two inputs share it (stable across runs). An existing case
folder is replaced only if acsdet wrote it for the same input; anything else there is refused
before any work, as is an output folder that is or lies inside an input. A failing input is
reported on one line and the others go on; the exit status is 1 if any input failed, 2 if
nothing could run (output folder, checkpoint, device).
"""
import argparse
import math
import os.path as osp
import pickle
import sys


def _slices(text: str):
    try:
        a, b = text.split(':')
        start, end = int(a) if a else 0, int(b) if b else None
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected START:END, got {text!r}') from None
    if start < 0 or (end is not None and end <= start):
        raise argparse.ArgumentTypeError(
            f'{text!r}: START:END needs 0 <= START < END (slice indices, end exclusive)')
    return start, end


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
    p.add_argument(
        '--slice-interval',
        '--slice-thickness',  # its name before acsdet 0.4
        type=float,
        help='slice interval (mm) of a PNG series')
    p.add_argument('--dl-info', help='DL_info.csv to look up a PNG series\' geometry')
    p.add_argument(
        '--volumetric',
        action='store_true',
        help='one 3D pass over the whole CT instead of one stack per key slice')
    p.add_argument(
        '--depth-chunk',
        type=int,
        default=32,
        help='--volumetric: key slices per chunk of the 3D pass (lower it if memory runs out)')
    p.add_argument(
        '--link-iou',
        type=float,
        default=0.5,
        help='grouping: IoU that links detections on adjacent slices into one lesion')
    p.add_argument(
        '--max-gap',
        type=int,
        default=1,
        help='grouping: slices without a detection that a lesion may bridge')
    p.add_argument(
        '--depth-ratio',
        type=float,
        default=2.0,
        help='grouping: cut lesions deeper than this times their in-plane size (0: no bound)')
    p.add_argument(
        '--link-contain',
        type=float,
        default=0.8,
        help='grouping: also link a box lying this much inside the next slice\'s (0: IoU only)')
    p.add_argument('--no-progress', action='store_true')
    args = p.parse_args(argv)
    if not 0 <= args.score_thr <= 1:
        p.error(f'--score-thr must be in [0, 1], got {args.score_thr}')
    if args.batch_size < 1:
        p.error(f'--batch-size must be >= 1, got {args.batch_size}')
    if args.depth_chunk < 1:
        p.error(f'--depth-chunk must be >= 1, got {args.depth_chunk}')
    for name in ('spacing', 'slice_interval'):
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            p.error(f'--{name.replace("_", "-")} must be a finite positive number (mm), got {v}')
    for path in (args.config, args.checkpoint):
        if not osp.isfile(path):
            p.error(f'no such file: {path}')
    return args


def plan_cases(args):
    """``[(input, case name)]`` with every input once, and the checks that need no model: the
    output folder is writable, no case folder is or holds an input, and every existing case
    folder may be replaced (raises ``OSError`` naming the problem)."""
    from acsdet.apis.case_folder import assign_case_names, check_output_location, check_replaceable
    from acsdet.io import case_name, input_key
    from acsdet.utils import check_writable_dir
    check_writable_dir(args.out_dir)
    inputs, keys = [], []
    for path in args.inputs:
        key = input_key(path, args.series)
        if key in keys:
            print(f'note: {path} is given twice; it runs once')
            continue
        inputs.append(path)
        keys.append(key)
    names = assign_case_names(args.out_dir, [(k, case_name(p)) for p, k in zip(inputs, keys)])
    folders = [osp.join(args.out_dir, n) for n in names]
    check_output_location(args.out_dir, folders, [p for p in inputs if osp.exists(p)])
    for folder, key in zip(folders, keys):
        if osp.lexists(folder):
            check_replaceable(folder, key)
    return list(zip(inputs, names))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cases = plan_cases(args)
    except OSError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    from acsdet.apis import GroupingRule, LesionDetector, write_case
    try:
        grouping = GroupingRule(args.link_iou, args.max_gap, args.depth_ratio or None,
                                args.link_contain or None)
        detector = LesionDetector(
            args.config,
            args.checkpoint,
            args.device,
            args.score_thr,
            args.batch_size,
            volumetric=args.volumetric,
            depth_chunk=args.depth_chunk,
            grouping=grouping)
    except (ValueError, OSError, pickle.UnpicklingError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    done, failed = [], []
    for path, case in cases:
        try:
            result = detector(
                path,
                args.slices,
                progress=not args.no_progress,
                series=args.series,
                spacing=args.spacing,
                slice_interval=args.slice_interval,
                dl_info=args.dl_info)
            folder = write_case(
                result,
                args.out_dir,
                case,
                save_masks=args.save_masks,
                save_overlays=args.save_overlays,
                meta=dict(config=args.config, checkpoint=args.checkpoint))
            done.append((path, folder, len(result.lesions), result.seconds['total']))
        except Exception as e:  # one case never stops the others; each failure on one line
            why = ' '.join(str(e).split()) or type(e).__name__
            if not isinstance(e, (ValueError, OSError)):
                why = f'{type(e).__name__}: {why}'
            if path not in why:
                why = f'{path}: {why}'
            print(f'error: {why[:500]}', file=sys.stderr)
            failed.append((path, why[:500]))
    print(f'\n{len(done)} case(s) done, {len(failed)} failed')
    for path, folder, n, sec in done:
        print(f'  {path}: {n} lesion(s) in {sec:.1f} s -> {osp.join(folder, "report.html")}')
    for path, why in failed:
        print(f'  {path}: FAILED: {why}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
