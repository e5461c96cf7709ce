#!/usr/bin/env python
"""Score saved detections with the official DeepLesion FROC: ``acsdet froc`` (see
``acsdet froc --help``).

    python tools/froc_eval.py DETECTIONS [GT] [--out-dir DIR] [--iou 0.5] [--fps ...]
"""
from acsdet.cli.froc import main
from acsdet.evaluation.detection_files import (InputError, gt_from_samples, load_detections,
                                               load_gt, match)

__all__ = ['InputError', 'gt_from_samples', 'load_detections', 'load_gt', 'main', 'match']

if __name__ == '__main__':
    main()
