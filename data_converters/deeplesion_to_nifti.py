#!/usr/bin/env python
"""``acsdet convert nifti`` (see ``acsdet convert nifti --help``)."""
import sys

from acsdet.cli.convert_nifti import *  # noqa: F401,F403  (the names tests and scripts use)
from acsdet.cli.convert_nifti import cli, main  # noqa: F401

if __name__ == '__main__':
    sys.exit(cli())
