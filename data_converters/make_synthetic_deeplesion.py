#!/usr/bin/env python
"""``acsdet convert synthetic`` (see ``acsdet convert synthetic --help``)."""
import sys

from acsdet.cli.convert_synthetic import *  # noqa: F401,F403  (the names tests and scripts use)
from acsdet.cli.convert_synthetic import cli, main  # noqa: F401

if __name__ == '__main__':
    sys.exit(cli())
