#!/usr/bin/env python
"""``acsdet convert coco`` (see ``acsdet convert coco --help``)."""
import sys

from acsdet.cli.convert_coco import *  # noqa: F401,F403  (the names tests and scripts use)
from acsdet.cli.convert_coco import cli, main  # noqa: F401

if __name__ == '__main__':
    sys.exit(cli())
