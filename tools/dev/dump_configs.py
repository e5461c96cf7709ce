"""Dump every resolved config (configs/**/*.py, _base_ excluded) as sorted JSON into a folder:
run it before and after a refactoring and `diff -r` the two folders.

    .venv/bin/python tools/dev/dump_configs.py OUT_DIR
"""
import glob
import json
import os
import sys

from mmengine.config import Config

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for path in sorted(glob.glob('configs/**/*.py', recursive=True)):
    if '/_base_/' in path:
        continue
    d = Config.fromfile(path).to_dict()
    name = path.replace('/', '__')
    with open(os.path.join(out, name + '.json'), 'w') as f:
        json.dump(d, f, indent=1, sort_keys=True, default=repr)
print(len(glob.glob(out + '/*.json')), 'configs dumped')
