"""``acsdet dist-train`` / ``acsdet dist-test``: one process per GPU (or per CPU share without
CUDA) through torchrun and MMEngine's ``pytorch`` launcher, as ``tools/dist_train.sh``.

    acsdet dist-train CONFIG NUM_PROCS [acsdet train arguments]
    acsdet dist-test CONFIG CHECKPOINT NUM_PROCS [acsdet test arguments]

Multi-node: the same ``NNODES``, ``NODE_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` (or ``PORT``)
on every node, as MMDetection's scripts (defaults 1, 0, 127.0.0.1, 29500).
"""
import os
import subprocess
import sys
from typing import List, Optional


def torchrun_command(num_procs: int, subcommand: str, args: List[str]) -> List[str]:
    """The torchrun call that starts ``num_procs`` processes of ``acsdet <subcommand> args``."""
    env = os.environ
    return [
        sys.executable, '-m', 'torch.distributed.run', f'--nnodes={env.get("NNODES", "1")}',
        f'--node_rank={env.get("NODE_RANK", "0")}',
        f'--master_addr={env.get("MASTER_ADDR", "127.0.0.1")}', f'--nproc_per_node={num_procs}',
        f'--master_port={env.get("MASTER_PORT", env.get("PORT", "29500"))}', '-m', 'acsdet.cli',
        subcommand, *args, '--launcher', 'pytorch'
    ]


def _run(argv, prog: str, subcommand: str, positionals: int) -> int:
    usage = (f'usage: {prog} CONFIG ' + ('CHECKPOINT ' if positionals == 2 else '') +
             f'NUM_PROCS [acsdet {subcommand} arguments]')
    if len(argv) < positionals + 1 or argv[0] in ('-h', '--help'):
        print(usage + '\n\n' + __doc__.split('\n\n')[0])
        return 0 if argv and argv[0] in ('-h', '--help') else 2
    try:
        n = int(argv[positionals])
        if n < 1:
            raise ValueError
    except ValueError:
        print(
            f'{prog}: error: NUM_PROCS must be a whole number >= 1, got {argv[positionals]!r}\n'
            f'{usage}',
            file=sys.stderr)
        return 2
    cmd = torchrun_command(n, subcommand, argv[:positionals] + argv[positionals + 1:])
    return subprocess.call(cmd)


def train_cli(argv=None, prog: Optional[str] = 'acsdet dist-train') -> int:
    return _run(list(argv or []), prog, 'train', 1)


def test_cli(argv=None, prog: Optional[str] = 'acsdet dist-test') -> int:
    return _run(list(argv or []), prog, 'test', 2)
