"""Detect lesions in patients' CTs with a trained acsdet model.

    acsdet infer CHECKPOINT [INPUT ...] [--config NAME|PATH] [--manifest CSV] --out-dir DIR
        [--output-type json nifti dicom-seg dicom-sr] [--series UID | --all-series]
        [--skip-done] [--device cpu] [--score-thr 0.5] [--batch-size 4] [--slices START:END]
        [--save-masks] [--save-overlays] [--spacing MM --slice-interval MM | --dl-info CSV]
        [--mode per-slice|volumetric [--depth-chunk N]] [--precision fp32|bf16] [--reuse-memory]
        [--link-iou 0.5] [--link-contain 0.8] [--max-gap 1]
        [--depth-ratio 2]
    acsdet list INPUT [INPUT ...]
    python tools/infer.py CONFIG CHECKPOINT [INPUT ...] ...  (the same, config first)
    python tools/infer.py --list INPUT [INPUT ...]

CHECKPOINT: an acsdet checkpoint; its model is rebuilt from the config it carries (MMEngine
records it) unless --config names one (a file, or a shipped config by name: acsdet configs).

INPUT: a DICOM folder (series found at any depth; --series UID picks one of several,
--all-series runs each), a .zip of a DICOM study, an enhanced-CT file, a NIfTI / NRRD /
MetaImage file, or a DeepLesion PNG series folder; --manifest adds the rows of a CSV (column
path, optional series and case). --list prints the series of DICOM inputs (description,
images, slice thickness; what is not CT is marked left out) and runs nothing.

Outputs per case in DIR/<case>/: lesions.json, lesions.csv, report.html, and with
--output-type nifti (or --save-masks) lesions.nii.gz (a label map in the input's exact
geometry), dicom-seg lesions_seg.dcm (a DICOM SEG, one segment per lesion), dicom-sr
lesions_sr.dcm (a TID 1500 measurement report referencing the SEG; DICOM inputs only);
--save-overlays lesion_NNN.png; the manifest acsdet-case.json. DIR/summary.csv lists every
case of the run (done, skipped, failed). <case> is the input's base name (DICOM series of
--all-series: <name>_s<series number>), or <name>-<8 hex> when two inputs share it (stable
across runs). --skip-done skips cases whose folder is complete with every output asked for,
made by the same config, checkpoint, thresholds, slices, mode, grouping and reading options
from the same input (its files' sizes and times unchanged).
--mode volumetric (--volumetric) runs the backbone once over the whole CT on the config's slice
grid (docs/inference.md, "Volumetric inference"); without --mode, a checkpoint trained with
train_context_slices runs volumetric and any other per slice. --precision bf16 runs the backbone
and neck in bfloat16 where the hardware computes it natively. The command asks torch for
transparent huge pages (THP_MEM_ALLOC_ENABLE=1 unless the environment sets it); --reuse-memory
also keeps freed memory for reuse (glibc; faster on CPU, a higher peak: docs/benchmarks.md).
Per-slice detections become 3D lesions by the grouping rule (--link-iou, --link-contain,
--max-gap, --depth-ratio; docs/inference.md, "Grouping detections into lesions"). An existing
case folder is replaced only if acsdet wrote it for the same input; anything else there is
refused before any work, as is an output folder that is or lies inside an input. A failing input
is reported on one line and the others go on; the exit status is 1 if any input failed, 2 if
nothing could run (output folder, checkpoint, device, manifest).
"""
import argparse
import math
import os.path as osp
import pickle
import sys
from typing import Optional

from .common import require_mmcv_ops, resolve_config_arg

#: ``--output-type`` choices (acsdet.export.OUTPUT_TYPES without overlays, which
#: --save-overlays asks for).
OUTPUT_CHOICES = ('json', 'nifti', 'dicom-seg', 'dicom-sr')
#: The flags of the library's parameters where the name is not the flag's.
FLAGS = dict(outputs='--output-type')


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


def build_parser(prog: Optional[str] = None, config_positional: bool = False):
    """The parser; ``config_positional``: ``CONFIG CHECKPOINT INPUT ...`` (tools/infer.py)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[2])
    if config_positional:
        p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('inputs', nargs='*', metavar='INPUT')
    if not config_positional:
        p.add_argument(
            '--config',
            help='config file or shipped name (default: the config the checkpoint carries)')
    p.add_argument(
        '--manifest',
        action='append',
        default=[],
        help='CSV of inputs: column path, optional series and case (may be given more than once)')
    p.add_argument('--out-dir', required=True)
    p.add_argument(
        '--output-type',
        nargs='+',
        default=['json'],
        choices=OUTPUT_CHOICES,
        help='json (always) and any of nifti, dicom-seg, dicom-sr (DICOM inputs)')
    p.add_argument('--all-series', action='store_true', help='run every CT series of a DICOM input')
    p.add_argument(
        '--skip-done',
        action='store_true',
        help='skip cases whose folder is complete with every output asked for')
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
        '--mode',
        choices=['per-slice', 'volumetric'],
        help='one stack per key slice, or one 3D pass over the whole CT (default: volumetric '
        'for a checkpoint trained with train_context_slices, per slice otherwise)')
    p.add_argument(
        '--volumetric',
        dest='mode',
        action='store_const',
        const='volumetric',
        help='--mode volumetric')
    p.add_argument(
        '--precision',
        choices=['fp32', 'bf16'],
        default='fp32',
        help='bf16: bfloat16 autocast of the backbone and neck where the hardware has it '
        '(AVX512-BF16 / AMX CPUs, GPUs); fp32 runs otherwise, with a warning')
    p.add_argument(
        '--reuse-memory',
        action='store_true',
        help='keep the memory freed tensors leave and reuse it (glibc): whole-CT inference on '
        'CPU 1.1-1.35x faster here, the peak memory 15-65%% higher (docs/benchmarks.md)')
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
    return p


def parse_args(argv=None, prog: Optional[str] = None, config_positional: bool = False):
    p = build_parser(prog, config_positional)
    args = p.parse_args(argv)
    if not args.inputs and not args.manifest:
        p.error('give at least one INPUT or --manifest')
    if args.series and args.all_series:
        p.error('--series picks one series, --all-series runs each: give one of them')
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
    if args.config is not None:
        args.config = resolve_config_arg(p, args.config)
    if not osp.isfile(args.checkpoint):
        p.error(f'no such file: {args.checkpoint}')
    from acsdet.export import output_types
    args.outputs = output_types(args.output_type, args.save_masks, args.save_overlays)
    return args


def list_cli(argv, prog: str = 'acsdet list') -> int:
    """``acsdet list INPUT ...``: the series of each DICOM input (one discovery a run)."""
    if not argv or argv[0] in ('-h', '--help'):
        print(f'usage: {prog} INPUT [INPUT ...]\n\nThe series of DICOM folders and zips '
              '(description, images, slice thickness; what is not CT is marked left out).')
        return 0 if argv else 2
    return main(['--list', *argv])


def list_series(argv) -> int:
    """``--list INPUT ...``: the series of each DICOM input."""
    from acsdet.export.planner import is_dicom_input
    from acsdet.io import CTReadError
    from acsdet.io.dicom_discovery import describe_series
    paths = [a for a in argv if a != '--list']
    if not paths:
        print('usage: acsdet list INPUT [INPUT ...]', file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        if not is_dicom_input(path):
            print(f'{path}: not a DICOM folder or zip (nothing to list)')
            continue
        try:
            print(describe_series(path))
        except CTReadError as e:
            print(f'error: {e}', file=sys.stderr)
            status = 1
    return status


def _one_line(e: Exception, path: str) -> str:
    from acsdet.utils.errors import cli_message
    why = ' '.join(cli_message(e, FLAGS).split()) or type(e).__name__
    if not isinstance(e, (ValueError, OSError)):
        why = f'{type(e).__name__}: {why}'
    if path not in why:
        why = f'{path}: {why}'
    return why[:500]


def cli(argv=None, prog: Optional[str] = None) -> int:
    """``acsdet infer``: the exit status."""
    return main(argv, prog)


def main(argv=None, prog: Optional[str] = None, config_positional: bool = False) -> int:
    from acsdet.utils.allocator import use_huge_pages
    use_huge_pages()  # before torch starts: it reads the switch once
    argv = sys.argv[1:] if argv is None else list(argv)
    args = None if '--list' in argv else parse_args(argv, prog, config_positional)
    if args is not None:
        require_mmcv_ops(prog or 'acsdet infer')
    from acsdet.io.dicom_discovery import one_discovery
    from acsdet.utils.signals import terminate_as_exit

    # each study extracted and scanned once in the run; SIGTERM cleans up as SIGINT does
    with terminate_as_exit(), one_discovery():
        return list_series(argv) if args is None else run(args)


def run(args) -> int:
    from acsdet.export.batch import ManifestError, Summary
    from acsdet.export.planner import plan_cases
    from acsdet.utils.errors import cli_message
    try:
        plan = plan_cases(args.inputs, args.out_dir, args.manifest, args.series, args.all_series,
                          args.outputs)
        summary = Summary(args.out_dir, plan.order)
    except (OSError, ManifestError) as e:
        print(f'error: {cli_message(e, FLAGS)}', file=sys.stderr)
        return 2
    for note in plan.notes:
        print(f'note: {note}')
    cases, names = plan.cases, plan.names
    failed = [(case, _one_line(e, case.path)) for case, e in plan.failed]
    from tqdm import tqdm

    from acsdet.apis import GroupingRule, LesionDetector, write_case
    from acsdet.export import is_done
    from acsdet.export.case_folder import made_with
    from acsdet.io import input_fingerprint
    if args.reuse_memory:
        from acsdet.utils.allocator import reuse_freed_memory
        if not reuse_freed_memory():
            print('note: --reuse-memory needs glibc (Linux): the C library\'s defaults apply')
    for case, why in failed:
        print(f'error: {why}', file=sys.stderr)
        summary.record(
            case.key,
            case=case.name,
            input=case.path,
            series=case.series or '',
            status='failed',
            error=why)
    try:
        grouping = GroupingRule(args.link_iou, args.max_gap, args.depth_ratio or None,
                                args.link_contain or None)
        detector = LesionDetector(
            args.config,
            args.checkpoint,
            args.device,
            args.score_thr,
            args.batch_size,
            volumetric=None if args.mode is None else args.mode == 'volumetric',
            depth_chunk=args.depth_chunk,
            grouping=grouping,
            precision=args.precision)
    except (ValueError, OSError, pickle.UnpicklingError) as e:
        print(f'error: {cli_message(e, FLAGS)}', file=sys.stderr)
        return 2
    if args.config:
        print(f'config: {args.config}')
    else:
        print(f'config: the one {args.checkpoint} carries (no --config given)')
    print(f'mode: {"volumetric" if detector.volumetric else "per-slice"} '
          f'({detector.mode_reason}); precision {detector.precision}')
    # what makes a case's results: --skip-done keeps only those made the same way
    settings = dict(
        detector.settings(),
        slices=list(args.slices) if args.slices else None,
        spacing=args.spacing,
        slice_interval=args.slice_interval,
        dl_info=input_fingerprint(args.dl_info) if args.dl_info else None)
    todo = []
    for case, name in zip(cases, names):
        folder = osp.join(args.out_dir, name)
        try:
            made = made_with(settings, input_fingerprint(case.path))
        except OSError:  # gone since planning: the run reports it
            made = None
        if args.skip_done and made and is_done(folder, case.key, args.outputs, made):
            summary.record(
                case.key,
                case=name,
                input=case.path,
                series=case.series or '',
                status='skipped',
                folder=folder,
                error='done before with the same settings and input (--skip-done)')
        else:
            todo.append((case, name, made))
    done, bad = [], [(c.path, why) for c, why in failed]
    bar = tqdm(total=len(todo), desc='CTs', unit='CT', disable=args.no_progress)
    for case, name, made in todo:
        row = dict(case=name, input=case.path, series=case.series or '')
        try:
            result = detector(
                case.path,
                args.slices,
                progress=not args.no_progress,
                series=case.series,
                spacing=args.spacing,
                slice_interval=args.slice_interval,
                dl_info=args.dl_info)
            folder = write_case(
                result, args.out_dir, name, outputs=args.outputs, checked=True, made_with=made)
            done.append((case.path, folder, len(result.lesions), result.seconds['total']))
            row.update(
                status='done',
                lesions=len(result.lesions),
                seconds=round(result.seconds['total'], 2),
                folder=folder)
        except Exception as e:  # one case never stops the others; each failure on one line
            why = _one_line(e, case.path)
            print(f'error: {why}', file=sys.stderr)
            bad.append((case.path, why))
            # DICOM outputs failed after the others were written: the folder holds those
            partial = getattr(e, 'folder', None)
            row.update(status='partial' if partial else 'failed', error=why, folder=partial or '')
        summary.record(case.key, **row)
        bar.update(1)
    bar.close()
    skipped = len(cases) - len(todo)
    print(f'\n{len(done)} case(s) done, {len(bad)} failed' +
          (f', {skipped} skipped (done before)' if skipped else '') + f'; summary: {summary.path}')
    for path, folder, n, sec in done:
        print(f'  {path}: {n} lesion(s) in {sec:.1f} s -> {osp.join(folder, "report.html")}')
    for path, why in bad:
        print(f'  {path}: FAILED: {why}')
    return 1 if bad else 0
