"""Render the paper's results table (Table VII) from ``configs/metafile.yml``, its one source,
into ``configs/README.md`` between the ``results table`` markers.

    python tools/dev/render_results.py [--check]   # --check: exit 1 if the README is stale
"""
import os.path as osp
import re
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
README = osp.join(ROOT, 'configs', 'README.md')
BEGIN, END = '<!-- results table: begin (tools/dev/render_results.py) -->', \
    '<!-- results table: end -->'
FPS = ('0.5', '1', '2', '4', '8', '16')


def render(metafile: str = osp.join(ROOT, 'configs', 'metafile.yml')) -> str:
    """The markdown table of every metafile model with results, in the metafile's order."""
    import yaml
    with open(metafile) as f:
        models = yaml.safe_load(f)['Models']
    rows = [
        '| config | paper row | slices | ' + ' | '.join(FPS) + ' | Avg (0.5-4) |',
        '|---' * (len(FPS) + 4) + '|'
    ]
    for m in models:
        for r in m.get('Results') or ():
            metrics = r['Metrics']
            row = re.search(r'\((.*)\)$', r.get('Source', '')).group(1)
            cells = [f'{metrics[f"Sensitivity@{fp}FP"]:.2f}' for fp in FPS]
            cells.append(f'{metrics["Average Sensitivity (0.5-4 FP)"]:.2f}')
            rows.append(f'| `{osp.relpath(m["Config"], "configs")}` | {row} | '
                        f'{m["Metadata"]["Slices"]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def updated(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f'{head}{BEGIN}\n{render()}\n{END}{tail}'


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(README) as f:
        text = f.read()
    new = updated(text)
    if '--check' in argv:
        if new != text:
            print(f'{README} is stale: run python tools/dev/render_results.py', file=sys.stderr)
            return 1
        return 0
    with open(README, 'w') as f:
        f.write(new)
    return 0


if __name__ == '__main__':
    sys.exit(main())
