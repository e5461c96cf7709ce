"""What the subcommands share: the runner arguments of train and test (MMDetection's), and
reading an argument list the way a script does."""
import argparse
import os


def add_runner_args(p: argparse.ArgumentParser) -> None:
    """The arguments ``train`` and ``test`` share."""
    from mmengine.config import DictAction  # light: no torch
    p.add_argument('--data-root', help='override the data root of every dataset')
    p.add_argument(
        '--slice-cache',
        metavar='DIR',
        help='keep decoded slices in DIR (0.5 MiB a slice) so that epochs after the first skip '
        'PNG decoding')
    p.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings, key=value')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, resolve the config (a path or a shipped name), and export ``LOCAL_RANK`` for
    torch.distributed as MMDetection's tools do."""
    args = p.parse_args(argv)
    args.config = resolve_config_arg(p, args.config)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def resolve_config_arg(p: argparse.ArgumentParser, given: str) -> str:
    """A config path or shipped name as a file (a note when a file shadows a shipped name);
    a parser error with the close names otherwise."""
    from ..model_index import ConfigNotFound, resolve_config
    try:
        path, note = resolve_config(given)
    except (ConfigNotFound, FileNotFoundError) as e:
        p.error(str(e))
    if note:
        print(f'note: {note}')
    return path


def require_mmcv_ops(prog: str) -> None:
    """Exit 2 with one line when mmcv lacks its compiled ops (``mmcv._ext``: an mmcv-lite, or a
    wheel built without them), before any work: MMDetection's RoI heads and NMS need them."""
    import sys
    try:
        from mmcv.ops import RoIAlign, nms  # noqa: F401
    except (ImportError, OSError) as e:
        print(
            f'{prog}: error: acsdet needs mmcv with its compiled ops (mmcv._ext), and this '
            f'mmcv has none ({" ".join(str(e).split())[:160]}): install mmcv 2.1.0 built with '
            'ops (make setup; pip install mmcv==2.1.0 --find-links WHEELHOUSE), not mmcv-lite',
            file=sys.stderr)
        raise SystemExit(2) from None
