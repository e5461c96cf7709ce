"""``acsdet configs``: the shipped configs with their model-index rows (``metafile.yml``).

    acsdet configs [--paths]
"""
import argparse
from typing import Optional


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description='The shipped configs and their model-index rows')
    p.add_argument('--paths', action='store_true', help='also print each config\'s file')
    return p


def cli(argv=None, prog: Optional[str] = None) -> int:
    from ..model_index import config_dir, config_rows
    args = build_parser(prog).parse_args(argv)
    rows = config_rows()
    head = ('name', 'mode', 'slices', 'ImageNet', 'paper Avg', 'weights')
    table = [head]
    for r in rows:
        m = r['metadata']
        table.append((r['name'], str(m.get('Backbone mode', '-')), str(m.get('Slices', '-')), {
            True: 'yes',
            False: 'no'
        }.get(m.get('ImageNet weights'),
              '-'), '-' if r['average'] is None else f'{r["average"]:.2f}',
                      'published' if r['weights'] else '-'))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print(f'{len(rows)} configs in {config_dir()} (a name or a path is a CONFIG of every '
          'subcommand):')
    for row, r in zip(table, [None] + rows):
        line = '  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
        print(line + (f'  {r["path"]}' if args.paths and r else ''))
    return 0
