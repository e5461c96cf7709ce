#!/usr/bin/env python
"""Detect lesions in patients' CTs: ``acsdet infer`` with the config first (MMDetection's
convention); see ``acsdet infer --help`` and docs/inference.md.

    python tools/infer.py CONFIG CHECKPOINT [INPUT ...] --out-dir DIR [options]
    python tools/infer.py --list INPUT [INPUT ...]
"""
import sys

from acsdet.cli.infer import *  # noqa: F401,F403  (the names tests and scripts use)
from acsdet.cli.infer import main as _main


def main(argv=None) -> int:
    return _main(argv, config_positional=True)


if __name__ == '__main__':
    sys.exit(main())
