#!/usr/bin/env python
"""Convert a released M3DV/AlignShift DeepLesion checkpoint: ``acsdet import`` (see
``acsdet import --help``).

    python tools/model_converters/m3dv_to_acsdet.py SRC DST [--arch ...] [--config CONFIG]
"""
import sys

from acsdet.cli.import_model import main

if __name__ == '__main__':
    sys.exit(main())
