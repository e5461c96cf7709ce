#!/usr/bin/env python
"""Train a detector: ``acsdet train`` (see ``acsdet train --help``).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [...]

Multi-GPU: tools/dist_train.sh CONFIG GPUS [arguments above].
"""
from acsdet.cli.train import build_cfg, main, parse_args  # noqa: F401

if __name__ == '__main__':
    main()
