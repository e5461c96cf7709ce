"""Score whole-CT detections with a lesion-level FROC in 3D (per volume), without a model.

    acsdet froc3d DETECTIONS [DETECTIONS ...]
        (--gt-label-maps DIR [--gt-lesions components|labels] | --gt-csv FILE [--gt-units voxel|lps]
         | --gt-deeplesion-3d DeepLesion_manual_1K_test_release.pkl [--split test|val])
        [--overlap iobb] [--thr 0.3] [--mode 3d|p3d] [--fps 0.125 ... 1024] [--average-fps ...]
        [--sizes 10 30] [--only-paired] [--out FILE.json]

DETECTIONS: ``lesions.json`` files of ``acsdet infer``, folders holding its case folders (at any
depth), or manifest CSVs (column ``lesions_json``, optionally ``case``). A case is named by its
folder (or the manifest's ``case``).

Ground truth, paired with the detections by case name:
  * ``--gt-label-maps DIR``: ``DIR/<case>.nii.gz`` (``.nii``, ``.nrrd``, ``.mha``), in the geometry
    of the CT as stored (size, spacing, origin and direction are checked); each 26-connected
    region of non-zero voxels is a lesion (``--gt-lesions components``), or each label value
    (``labels``);
  * ``--gt-csv FILE``: columns ``case, x1, y1, z1, x2, y2, z2``: two opposite corners of a box in
    the CT file's own voxel indices, inclusive (``--gt-units voxel``), or in LPS mm (``lps``);
  * ``--gt-deeplesion-3d PKL``: DeepLesion's manual 3D test set (Yan et al., IEEE TMI 2020; read
    without running code from the pickle): cases named ``{series}_{top}-{bottom}``, the NIfTI of
    exactly those slices (``acsdet convert nifti --sub-volumes``).

Defaults are the published setting: IoBB >= 0.3 in 3D, sensitivity at 2^-3 .. 2^10 FPs per
volume, the average over 0.125 .. 8. A GT case without a lesion counts as a volume (its
detections are false positives); a case with GT but no lesions.json, or a lesions.json without
GT, is an error naming it (``--only-paired`` scores the paired cases and lists the others).
Size subsets (``--sizes``, mm, the longer in-plane side of the GT box) keep every detection, as
the 2D protocol's subsets. Bad input (no 3D boxes, another geometry, NaN or inverted boxes) is an
error naming the file, case and row.
"""
import argparse
import json
import os
import os.path as osp
from typing import Optional

import numpy as np

from ..evaluation.froc3d import AVERAGE_FPS_3D, FPS_3D, MODES, OVERLAPS, compute_froc_3d
from ..evaluation.lesion_boxes import (LesionBoxError, csv_boxes_to_frame, find_detections,
                                       label_map_boxes, long_side_mm, read_box_csv,
                                       read_manual_3d_test_set, sub_volume_offset)
from ..utils.run_outputs import OutputRefused, RunOutputs

LABEL_MAP_EXTENSIONS = ('.nii.gz', '.nii', '.nrrd', '.mha', '.mhd')


def _label_maps(folder: str) -> dict:
    if not osp.isdir(folder):
        raise LesionBoxError(f'{folder}: no such folder')
    out = {}
    for name in sorted(os.listdir(folder)):
        for ext in LABEL_MAP_EXTENSIONS:
            if name.lower().endswith(ext):
                case = name[:-len(ext)]
                if case in out:
                    raise LesionBoxError(f'{folder}: two label maps for case {case!r}: '
                                         f'{osp.basename(out[case])} and {name}')
                out[case] = osp.join(folder, name)
                break
    if not out:
        raise LesionBoxError(f'{folder}: no label maps ({", ".join(LABEL_MAP_EXTENSIONS)})')
    return out


def _pair(gt_cases, det_cases, only_paired: bool):
    missing_det = sorted(set(gt_cases) - set(det_cases))
    missing_gt = sorted(set(det_cases) - set(gt_cases))
    if (missing_det or missing_gt) and not only_paired:
        parts = []
        if missing_det:
            parts.append(f'no lesions.json for GT case(s) {missing_det[:10]}')
        if missing_gt:
            parts.append(f'no ground truth for detected case(s) {missing_gt[:10]}')
        raise LesionBoxError('; '.join(parts) + ' (--only-paired scores the cases that pair)')
    return sorted(set(gt_cases) & set(det_cases)), missing_det, missing_gt


def load_cases(args, outputs: RunOutputs = None):
    """``(names, detections (n, 7) each, GT (m, 6) each, GT sizes mm each, unpaired note)``;
    the files read are added to ``outputs``' inputs."""
    dets = find_detections(args.detections)
    if outputs is not None:
        outputs.add_inputs(d.path for d in dets.values())
    if args.gt_label_maps:
        maps = _label_maps(args.gt_label_maps)
        if outputs is not None:
            outputs.add_inputs(maps.values())
        cases, *unpaired = _pair(maps, dets, args.only_paired)
        gts = {c: label_map_boxes(maps[c], dets[c].geometry, args.gt_lesions) for c in cases}
    elif args.gt_csv:
        rows = read_box_csv(args.gt_csv)
        cases, *unpaired = _pair(rows, dets, args.only_paired)
        gts = {c: csv_boxes_to_frame(rows[c], dets[c].geometry, args.gt_units) for c in cases}
    else:
        manual = read_manual_3d_test_set(args.gt_deeplesion_3d, args.split)
        cases, *unpaired = _pair(manual, dets, args.only_paired)
        gts = {}
        for c in cases:  # detections to the series' PNG slice numbers
            d = dets[c].boxes.copy()
            d[:, [2, 5]] += sub_volume_offset(c)
            dets[c].boxes = d
            gts[c] = manual[c]
    if not cases:
        raise LesionBoxError('no case has both detections and ground truth')
    sizes = {c: long_side_mm(gts[c], dets[c].geometry) for c in cases}
    return (cases, [dets[c].boxes
                    for c in cases], [gts[c] for c in cases], [sizes[c] for c in cases], unpaired)


def _by_fps(result) -> dict:
    """``{'<FPs>': sensitivity}`` of a 3D FROC result, as ``--out`` writes it."""
    return {f'{f:g}': float(s) for f, s in zip(result.fps, result.sensitivities)}


def _size_groups(edges):
    lo, hi = edges
    return [(f'<{lo:g}mm', -np.inf, lo), (f'{lo:g}-{hi:g}mm', lo, hi), (f'>={hi:g}mm', hi, np.inf)]


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    p.add_argument('detections', nargs='+')
    gt = p.add_mutually_exclusive_group(required=True)
    gt.add_argument('--gt-label-maps', metavar='DIR')
    gt.add_argument('--gt-csv', metavar='FILE')
    gt.add_argument('--gt-deeplesion-3d', metavar='PKL')
    p.add_argument('--gt-lesions', choices=['components', 'labels'], default='components')
    p.add_argument('--gt-units', choices=['voxel', 'lps'], default='voxel')
    p.add_argument('--split', choices=['test', 'val'], default='test')
    p.add_argument('--overlap', type=str.lower, choices=OVERLAPS, default='iobb')
    p.add_argument('--thr', type=float, default=0.3)
    p.add_argument('--mode', type=str.lower, choices=MODES, default='3d')
    p.add_argument('--fps', type=float, nargs='+', default=list(FPS_3D))
    p.add_argument('--average-fps', type=float, nargs='+', default=list(AVERAGE_FPS_3D))
    p.add_argument('--sizes', type=float, nargs=2, default=[10.0, 30.0], metavar=('LO', 'HI'))
    p.add_argument('--only-paired', action='store_true')
    p.add_argument('--out', help='write the results as JSON here')
    return p


def main(argv=None, prog: Optional[str] = None):
    p = build_parser(prog)
    args = p.parse_args(argv)
    if not 0 < args.thr <= 1:
        p.error(f'--thr must be in (0, 1], got {args.thr}')
    if any(f not in args.fps for f in args.average_fps):
        p.error(f'--average-fps {args.average_fps} must be among --fps {args.fps}')
    if not 0 < args.sizes[0] < args.sizes[1]:
        p.error(f'--sizes needs 0 < LO < HI, got {args.sizes}')
    outputs = RunOutputs(
        'froc3d_eval',
        args.detections + [args.gt_label_maps or args.gt_csv or args.gt_deeplesion_3d])
    try:
        cases, dets, gts, sizes, (no_det, no_gt) = load_cases(args, outputs)
        out = outputs.claim(args.out) if args.out else None  # before the work
        kw = dict(
            fps=args.fps,
            metric=args.overlap,
            thr=args.thr,
            mode=args.mode,
            average_fps=args.average_fps,
            names=cases)
        main_res = compute_froc_3d(dets, gts, **kw)
        subsets = {}
        for name, lo, hi in _size_groups(args.sizes):
            sub = [g[(s >= lo) & (s < hi)] for g, s in zip(gts, sizes)]
            if sum(len(s) for s in sub):
                subsets[name] = compute_froc_3d(dets, sub, **kw)
    except (LesionBoxError, ValueError, OSError, OutputRefused) as e:
        p.exit(2, f'{p.prog}: error: {e}\n')
    setting = (f'{args.overlap.upper()} >= {args.thr:g}, {args.mode.upper()}, '
               f'{len(cases)} volumes')
    print(main_res.table(f'3D FROC ({setting})'))
    for name, r in subsets.items():
        print(f'  {name}: {r.num_lesions} lesions, Avg {100 * r.average:.2f}%')
    empty = [c for c, g in zip(cases, gts) if not len(g)]
    if empty:
        print(f'note: {len(empty)} volumes without a GT lesion (their detections count as FPs)')
    for what, names in (('GT cases without lesions.json', no_det), ('detected cases without GT',
                                                                    no_gt)):
        if names:
            print(f'note: --only-paired left out {len(names)} {what}: {names[:10]}')
    if out:
        doc = dict(
            setting=dict(
                overlap=args.overlap,
                thr=args.thr,
                mode=args.mode,
                fps=args.fps,
                average_fps=args.average_fps,
                sizes_mm=args.sizes),
            volumes=len(cases),
            lesions=main_res.num_lesions,
            sensitivity=_by_fps(main_res),
            average=main_res.average,
            subsets={
                k: dict(lesions=r.num_lesions, average=r.average, sensitivity=_by_fps(r))
                for k, r in subsets.items()
            },
            unpaired=dict(gt_without_detections=no_det, detections_without_gt=no_gt),
            cases=cases)
        outputs.write(out, lambda f: json.dump(doc, f, indent=1))
        print(f'wrote {out}')
    return main_res, subsets


def cli(argv=None, prog: Optional[str] = None) -> int:
    return 0 if main(argv, prog) else 1
