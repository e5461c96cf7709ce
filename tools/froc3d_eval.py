#!/usr/bin/env python
"""Score whole-CT detections with a lesion-level 3D FROC: ``acsdet froc3d`` (see
``acsdet froc3d --help``).

    python tools/froc3d_eval.py DETECTIONS [DETECTIONS ...] (--gt-label-maps DIR | --gt-csv FILE
        | --gt-deeplesion-3d PKL) [options]
"""
import sys

from acsdet.cli.froc3d import *  # noqa: F401,F403  (the names tests and scripts use)
from acsdet.cli.froc3d import main

if __name__ == '__main__':
    sys.exit(0 if main() else 1)
