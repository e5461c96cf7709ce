"""configs/metafile.yml, the model index: every config has one row, each row's config builds the
backbone the row states, and configs/README.md's results table is rendered from it."""
import glob
import os.path as osp

import pytest
import yaml
from mmengine.config import Config

from .helpers import ROOT

CONFIGS = sorted(
    osp.relpath(c, ROOT)
    for c in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in c)
MODELS = yaml.safe_load(open(osp.join(ROOT, 'configs', 'metafile.yml')))['Models']


def test_every_config_has_one_metafile_row():
    listed = [m['Config'] for m in MODELS]
    assert sorted(listed) == CONFIGS and len(set(listed)) == len(listed)
    assert len({m['Name'] for m in MODELS}) == len(MODELS)


@pytest.mark.parametrize('row', MODELS, ids=lambda m: m['Name'])
def test_each_config_builds_the_backbone_its_row_states(row):
    from mmengine.registry import init_default_scope

    import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
    from mmdet.registry import MODELS as REGISTRY
    cfg = Config.fromfile(osp.join(ROOT, row['Config']))
    b = cfg.model.backbone
    init_cfg = b.get('init_cfg') or {}
    stated = row['Metadata']
    assert (b.conv_mode, b.num_slices,
            init_cfg.get('type') == 'Pretrained') == (stated['Backbone mode'], stated['Slices'],
                                                      stated['ImageNet weights'])
    init_default_scope('mmdet')
    backbone = REGISTRY.build(b)
    assert backbone.num_slices == stated['Slices']
    for result in row.get('Results') or ():
        m = result['Metrics']
        avg = sum(m[f'Sensitivity@{fp}FP'] for fp in ('0.5', '1', '2', '4')) / 4
        assert m['Average Sensitivity (0.5-4 FP)'] == pytest.approx(avg, abs=0.006)


def test_the_readme_results_table_is_the_metafiles():
    from tools.dev.render_results import README, updated
    text = open(README).read()
    assert updated(text) == text
    assert '| `deeplesion_acs_7slice.py` | ACS p. | 7 | 78.38 |' in text  # the paper's setting
