"""Build every config's model (configs/**/*.py, _base_ excluded) from one seed, pretrained
loading off, and dump its module tree, its state dict (name, shape, SHA-1 of the bytes) and the
SHA-1 of its outputs on one fixed input as JSON into a folder: run it before and after a
refactoring and `diff -r` the two folders (the converted models must be identical).

    .venv/bin/python tools/dev/dump_models.py OUT_DIR [CONFIG ...]
"""
import glob
import hashlib
import json
import os
import sys

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
from mmdet.registry import MODELS


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def dump(path: str) -> dict:
    cfg = Config.fromfile(path)
    cfg.model.backbone.pop('init_cfg', None)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    bb = model.backbone
    torch.manual_seed(1)
    x = torch.randn(2, bb.num_slices, 64, 64)
    kw = {'thickness': torch.tensor([1.0, 5.0])} if getattr(bb, '_takes_thickness', False) else {}
    with torch.no_grad():
        outs = bb(x, **kw)
    return dict(
        modules=str(model).splitlines(),
        state={
            k: [list(v.shape), _sha(v)]
            for k, v in model.state_dict().items()
        },
        backbone_outputs=[_sha(o) for o in outs])


def main():
    init_default_scope('mmdet')
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    paths = sys.argv[2:] or [
        p for p in sorted(glob.glob('configs/**/*.py', recursive=True)) if '/_base_/' not in p
    ]
    for path in paths:
        with open(os.path.join(out, path.replace('/', '__') + '.json'), 'w') as f:
            json.dump(dump(path), f, indent=1, sort_keys=True)
    print(len(paths), 'models dumped')


if __name__ == '__main__':
    main()
