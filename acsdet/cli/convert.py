"""``acsdet convert``: data conversions.

    acsdet convert coco --data-root DIR --out-dir DIR ...    DeepLesion to COCO, GrabCut masks
    acsdet convert nifti SERIES ... --out-dir DIR ...        CTs (PNG series, ...) to NIfTI
    acsdet convert synthetic --out DIR --num-series N ...    a synthetic DeepLesion-format set
"""
import importlib
import sys
from typing import Optional

#: ``{conversion: (module of acsdet.cli, one-line help)}``.
CONVERSIONS = {
    'coco': ('convert_coco', 'DeepLesion (DL_info.csv, Images_png/) to COCO with GrabCut masks'),
    'nifti': ('convert_nifti', 'DeepLesion PNG series (or any CT acsdet reads) to NIfTI'),
    'synthetic': ('convert_synthetic', 'a synthetic dataset in the exact DeepLesion layout'),
}


def cli(argv=None, prog: Optional[str] = 'acsdet convert') -> int:
    from ..utils.lookup import unknown_name_message
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(f'usage: {prog} {{{",".join(CONVERSIONS)}}} [ARGS ...]\n')
        for name, (_, text) in CONVERSIONS.items():
            print(f'  {name.ljust(10)} {text}')
        return 0 if argv else 2
    if argv[0] not in CONVERSIONS:
        print(
            f'{prog}: error: {unknown_name_message(argv[0], CONVERSIONS, "conversion")}',
            file=sys.stderr)
        return 2
    module = importlib.import_module(f'{__package__}.{CONVERSIONS[argv[0]][0]}')
    return int(module.cli(argv[1:], prog=f'{prog} {argv[0]}') or 0)
