"""Print acsdet's layout: per package (or top-level module) its files, lines, and the acsdet
packages it imports (from an AST walk, relative imports resolved; imports inside functions
count too). Run it before and after a restructuring to compare.

    python tools/dev/package_layout.py [ROOT]   # ROOT: the folder holding acsdet/ (default .)
"""
import ast
import os
import os.path as osp
import sys
from collections import defaultdict


def _unit(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else parts[0]


def layout(root: str):
    files, lines, imports = defaultdict(int), defaultdict(int), defaultdict(set)
    pkg_root = osp.join(root, 'acsdet')
    for dirpath, _, names in os.walk(pkg_root):
        for name in names:
            if not name.endswith('.py'):
                continue
            path = osp.join(dirpath, name)
            rel = osp.relpath(path, root)[:-3].replace(os.sep, '.')
            module = rel[:-len('.__init__')] if rel.endswith('.__init__') else rel
            unit = _unit(module)
            src = open(path).read()
            files[unit] += 1
            lines[unit] += src.count('\n')
            package = module if name == '__init__.py' else module.rsplit('.', 1)[0]
            for node in ast.walk(ast.parse(src)):
                targets = []
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = package.split('.')
                        base = base[:len(base) - node.level + 1]
                        mod = '.'.join(base + ([node.module] if node.module else []))
                        targets = [mod] if node.module else [f'{mod}.{a.name}' for a in node.names]
                    elif node.module:
                        targets = [node.module]
                for t in targets:
                    if t.startswith('acsdet.') and _unit(t) != unit:
                        imports[unit].add(_unit(t))
    return files, lines, imports


def main():
    files, lines, imports = layout(sys.argv[1] if len(sys.argv) > 1 else '.')
    print(f'{"unit":<14}{"files":>6}{"lines":>7}  imports')
    for unit in sorted(files, key=lambda u: (-len(imports[u]), u)):
        print(f'{unit:<14}{files[unit]:>6}{lines[unit]:>7}  {", ".join(sorted(imports[unit]))}')
    print(f'{"total":<14}{sum(files.values()):>6}{sum(lines.values()):>7}')


if __name__ == '__main__':
    main()
