"""The ``acsdet`` command: one entry point, a subcommand per job.

    acsdet infer CHECKPOINT INPUT ... --out-dir DIR [--config NAME|PATH]
    acsdet list INPUT ...
    acsdet train CONFIG ...          acsdet dist-train CONFIG NUM_PROCS ...
    acsdet test CONFIG CHECKPOINT    acsdet dist-test CONFIG CHECKPOINT NUM_PROCS ...
    acsdet froc DETECTIONS [GT]      acsdet froc3d DETECTIONS ... --gt-...
    acsdet convert coco|nifti|synthetic ...
    acsdet configs                   acsdet import SRC DST
    acsdet --version

Each subcommand is a module of this package with ``build_parser(prog)`` and ``cli(argv, prog)``
(the exit status); ``tools/*.py`` and ``data_converters/*.py`` are thin shims over them. Parsing
imports no torch (``--help`` answers at once); the work imports what it needs.
"""
import importlib
import sys
from typing import Dict, Optional, Sequence, Tuple

#: ``{subcommand: (module of acsdet.cli, function, one-line help)}``.
SUBCOMMANDS: Dict[str, Tuple[str, str, str]] = {
    'infer': ('infer', 'cli', 'detect lesions in CTs: DICOM, NIfTI, NRRD, MetaImage, PNG series'),
    'list': ('infer', 'list_cli', 'the series of DICOM folders and zips'),
    'train': ('train', 'cli', 'train a detector (MMEngine runner)'),
    'test': ('test', 'cli', 'test a detector on DeepLesion; print the FROC table'),
    'dist-train': ('dist', 'train_cli', 'data-parallel training through torchrun'),
    'dist-test': ('dist', 'test_cli', 'data-parallel testing through torchrun'),
    'froc': ('froc', 'cli', 'the official DeepLesion FROC of saved detections'),
    'froc3d': ('froc3d', 'cli', 'the 3D lesion FROC of lesions.json files'),
    'convert': ('convert', 'cli', 'DeepLesion to COCO (GrabCut masks) or NIfTI; synthetic data'),
    'configs': ('configs', 'cli', 'the shipped configs and their model-index rows'),
    'import': ('import_model', 'cli', 'a released M3DV/AlignShift checkpoint as an acsdet one'),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [
        'usage: acsdet [--version] SUBCOMMAND [ARGS ...]', '',
        'Universal lesion detection in CT with ACS convolutions (MMDetection 3.x).', '',
        'subcommands:'
    ]
    lines += [f'  {name.ljust(width)}  {info[2]}' for name, info in SUBCOMMANDS.items()]
    lines += ['', "`acsdet SUBCOMMAND --help` describes one; docs: docs/cli.md"]
    return '\n'.join(lines)


def run(name: str, argv: Sequence[str]) -> int:
    """Run subcommand ``name`` with ``argv``; its exit status."""
    from ..utils.lookup import unknown_name_message
    if name not in SUBCOMMANDS:
        print(
            f'acsdet: error: {unknown_name_message(name, SUBCOMMANDS, "subcommand")}',
            file=sys.stderr)
        return 2
    module, function, _ = SUBCOMMANDS[name]
    entry = getattr(importlib.import_module(f'{__name__}.{module}'), function)
    return int(entry(list(argv), prog=f'acsdet {name}') or 0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``acsdet`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == '--version':
        from ..version import __version__
        print(f'acsdet {__version__}')
        return 0
    if argv[0].startswith('-'):
        print(
            f'acsdet: error: unknown option {argv[0]!r} before the subcommand\n{_usage()}',
            file=sys.stderr)
        return 2
    return run(argv[0], argv[1:])
