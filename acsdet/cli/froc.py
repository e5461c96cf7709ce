"""Score saved detections with the official DeepLesion FROC, without a model.

    acsdet froc DETECTIONS [GT] [--out-dir DIR] [--iou 0.5] [--fps 0.5 1 2 4 8 16]

DETECTIONS:
  * the ``--out`` pickle of ``acsdet test`` (MMDetection's dumped data samples; loaded with a
    restricted unpickler that resolves only tensors, numpy arrays and plain containers), or
  * a JSON object ``{"<series>/<slice>.png": [[x1, y1, x2, y2, score], ...], ...}``.
GT:
  * a COCO file written by ``acsdet convert coco`` (noisy lesions are left out,
    as in the official protocol; lesion type, size and thickness subsets are reported), or
  * a JSON object ``{"<series>/<slice>.png": [[x1, y1, x2, y2], ...], ...}``;
  * omitted: the GT stored in the pickle's samples (``instances``).
Plain JSON boxes are inclusive pixel boxes, as in DL_info.csv (0-based), scored with the official
+1-pixel IoU; pickles and COCO files hold MMDetection's continuous boxes and are converted
(``acsdet/deeplesion/boxes.py``).

Images are matched by their DeepLesion key ``<series>/<slice>.png`` (any path ending with it);
COCO ids shift when a re-conversion skips a row, so they are used only when the detections carry
no file names, and then every id must exist in GT and either the pickle holds its own GT (which
must be the same lesions) or the detections carry the GT file's fingerprint: a JSON key
``"gt_fingerprint"`` equal to the COCO file's (``info.fingerprint``, written by the converter, or
``acsdet.deeplesion.coco.coco_fingerprint``); id-only detections without either are refused.
A JSON file with an image twice is refused (a plain JSON reader keeps the last one). Evaluated
images are those of GT with at least one lesion (the official protocol); detections of other
images are ignored and counted. Malformed input (a detection that
is not 5 finite numbers, x2 < x1, a score that is not finite) is an error naming the file and
the image.
"""
import argparse
import os.path as osp
import pickle
from typing import Optional

import numpy as np

from ..evaluation.froc import DEFAULT_FPS


def _check_args(p, args):
    if not 0 < args.iou <= 1:
        p.error(f'--iou must be in (0, 1], got {args.iou}')
    if not all(np.isfinite(f) and f > 0 for f in args.fps):
        p.error(f'--fps must be positive numbers, got {args.fps}')


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 2)[2])
    p.add_argument('detections')
    p.add_argument('gt', nargs='?')
    p.add_argument('--iou', type=float, default=0.5)
    p.add_argument('--fps', type=float, nargs='+', default=list(DEFAULT_FPS))
    p.add_argument('--out-dir', help='write froc.json, froc_table.txt and froc_curve.png here')
    return p


def main(argv=None, prog: Optional[str] = None):
    """Score; returns the metrics."""
    p = build_parser(prog)
    args = p.parse_args(argv)
    from ..evaluation.detection_files import (InputError, gt_from_samples, load_detections, load_gt,
                                              match, score_matched)
    from ..evaluation.froc_metric import FROC_FILES
    from ..utils.run_outputs import OutputRefused, RunOutputs
    _check_args(p, args)
    for path in filter(None, (args.detections, args.gt)):
        if not osp.isfile(path):
            p.error(f'no such file: {path}')

    try:
        entries, samples, det_fingerprint = load_detections(args.detections)
        gt_fingerprint = None
        if args.gt:
            (gt, gt_fingerprint), gt_path = load_gt(args.gt), args.gt
        elif samples is not None:
            gt, gt_path = gt_from_samples(samples), args.detections
        else:
            p.error(
                'GT is required unless DETECTIONS is a acsdet test --out pickle holding instances')
        matched, unmatched = match(entries, gt, samples, args.detections, gt_path,
                                   (det_fingerprint, gt_fingerprint))
        outputs = RunOutputs('froc_eval', [args.detections, args.gt])
        for name in FROC_FILES if args.out_dir else ():  # refused before the work, not after
            outputs.claim(osp.join(args.out_dir, name))
    except (InputError, ValueError, OSError, OutputRefused, pickle.UnpicklingError) as e:
        p.exit(2, f'{p.prog}: error: {e}\n')
    if not any(g['instances'] for g in gt):
        p.error('no image with a GT lesion to evaluate')
    metrics, text, missing, without_gt = score_matched(matched, gt, args.fps, args.iou,
                                                       args.out_dir, outputs)
    if missing:
        print(f'note: {missing} GT images have no detections (scored as empty)')
    if unmatched:
        print(f'note: detections of {len(unmatched)} images that are not in the GT were ignored '
              f'(e.g. {", ".join(repr(k) for k in unmatched[:3])})')
    if without_gt:
        print(f'note: detections of {without_gt} images without GT lesions were ignored')
    print(text)
    if args.out_dir:
        print(f'wrote {osp.join(args.out_dir, "froc.json")} and froc_curve.png')
    return metrics


def cli(argv=None, prog: Optional[str] = None) -> int:
    main(argv, prog)
    return 0
