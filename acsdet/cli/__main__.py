"""``python -m acsdet.cli SUBCOMMAND ...``: the ``acsdet`` command (what torchrun starts)."""
import sys

from . import main

sys.exit(main())
