#!/usr/bin/env python
"""Test a detector and print the FROC table: ``acsdet test`` (see ``acsdet test --help``).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [...]

Multi-GPU: tools/dist_test.sh CONFIG CHECKPOINT GPUS [arguments above].
"""
from acsdet.cli.test import build_cfg, main, parse_args  # noqa: F401

if __name__ == '__main__':
    main()
