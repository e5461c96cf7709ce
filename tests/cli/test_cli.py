"""The ``acsdet`` command: subcommands answer --help without torch, unknown names get the close
ones, configs resolve by name or path, a checkpoint that carries its config is enough to run."""
import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from acsdet.cli import SUBCOMMANDS, main
from acsdet.model_index import ConfigNotFound, config_rows, resolve_config, shipped_configs

from ..helpers import CONFIG_DEMO, ROOT

HELP_PROBE = """
import sys, time
from acsdet.cli import SUBCOMMANDS, run
from acsdet.cli.convert import CONVERSIONS
calls = [[name] for name in SUBCOMMANDS] + [['convert', c] for c in CONVERSIONS]
worst = 0.0
for call in calls:
    t = time.perf_counter()
    try:
        code = run(call[0], call[1:] + ['--help'])
    except SystemExit as e:
        code = e.code
    worst = max(worst, time.perf_counter() - t)
    assert code == 0, (call, code)
print('torch' in sys.modules, 'mmdet' in sys.modules, round(worst, 3))
"""


def test_every_subcommand_answers_help_without_torch():
    """Parsing imports no torch, MMDetection or model code (the wheel check in .ci/run times
    each --help of an installed acsdet under a second)."""
    out = subprocess.run([sys.executable, '-c', HELP_PROBE],
                         capture_output=True,
                         text=True,
                         cwd=ROOT,
                         check=True).stdout.split('\n')
    torch_loaded, mmdet_loaded, worst = out[-2].split()
    assert torch_loaded == 'False' and mmdet_loaded == 'False' and float(worst) < 1.0


def test_unknown_names_get_the_close_ones(capsys):
    assert main(['infr']) == 2
    assert "subcommand 'infr' is not one of 'infer'" in capsys.readouterr().err
    assert main(['convert', 'nifty']) == 2
    assert "did you mean 'nifti'?" in capsys.readouterr().err
    assert main(['--version']) == 0 and capsys.readouterr().out.startswith('acsdet 0.')
    with pytest.raises(SystemExit) as e:
        main([
            'infer', 'model.pth', 'x.nii.gz', '--out-dir', 'o', '--config', 'deeplesion_acs_7slic'
        ])
    assert e.value.code == 2
    assert "config 'deeplesion_acs_7slic' is not one of" in capsys.readouterr().err


def test_configs_resolve_by_name_or_path_and_say_which(tmp_path, monkeypatch):
    shipped = shipped_configs()
    assert 'deeplesion_acs_7slice' in shipped and 'demo/deeplesion_acs_7slice_demo' in shipped
    assert not any(n.startswith('_base_') for n in shipped)
    monkeypatch.chdir(tmp_path)  # no configs/ here: names and configs/... paths are shipped
    for given in ('deeplesion_acs_7slice', 'deeplesion_acs_7slice.py',
                  'configs/deeplesion_acs_7slice.py'):
        assert resolve_config(given) == (shipped['deeplesion_acs_7slice'], None)
    (tmp_path / 'deeplesion_acs_7slice.py').write_text("_base_ = []\n")
    path, note = resolve_config('deeplesion_acs_7slice.py')
    assert path == 'deeplesion_acs_7slice.py' and 'is used, not the shipped config' in note
    with pytest.raises(ConfigNotFound, match=r"did you mean 'deeplesion_acs_7slice'"):
        resolve_config('deeplesion_acs_7slic')
    rows = {r['name']: r for r in config_rows()}
    assert rows['deeplesion_acs_7slice']['average'] == 86.76  # Table VII, from the metafile
    assert rows['deeplesion_acs_7slice']['metadata']['Slices'] == 7


def test_constants_of_the_light_parsers_agree_with_the_library():
    from acsdet.cli.convert_coco import WINDOWS
    from acsdet.cli.import_model import ARCHS
    from acsdet.engine import m3dv_checkpoint
    from acsdet.preparation import deeplesion_coco
    assert ARCHS == m3dv_checkpoint.ARCHS and WINDOWS == deeplesion_coco.WINDOWS
    assert set(SUBCOMMANDS) >= {'infer', 'train', 'test', 'froc', 'froc3d', 'convert', 'import'}


def test_dist_subcommands_start_torchrun_with_the_node_settings(monkeypatch):
    from acsdet.cli.dist import torchrun_command
    monkeypatch.setenv('NNODES', '2')
    monkeypatch.setenv('PORT', '29511')
    cmd = torchrun_command(4, 'train', ['cfg.py', '--work-dir', 'w'])
    assert cmd[1:3] == ['-m', 'torch.distributed.run'] and '--nnodes=2' in cmd
    assert '--master_port=29511' in cmd and '--nproc_per_node=4' in cmd
    assert cmd[-7:] == ['acsdet.cli', 'train', 'cfg.py', '--work-dir', 'w', '--launcher', 'pytorch']


def test_a_checkpoint_without_a_config_is_refused_naming_what_it_is(tmp_path):
    from acsdet.engine.architecture import ARCH_KEY, config_from_checkpoint
    cases = {
        'foreign': ({}, 'no config and no acsdet architecture record'),
        'm3dv': ({
            'meta': {
                'config': 'model = dict()'
            }
        }, 'acsdet import'),
        'record': ({
            'meta': {
                ARCH_KEY: {}
            }
        }, 'an acsdet architecture record but no config'),
    }
    for name, (ckpt, want) in cases.items():
        with pytest.raises(ValueError, match=want):
            config_from_checkpoint(ckpt, f'{name}.pth')
    cfg = config_from_checkpoint({'meta': {'cfg': 'a = 1\nb = dict(c=2)\n'}}, 'x.pth')
    assert cfg.a == 1 and cfg.b.c == 2


@pytest.fixture(scope='module')
def carried(tmp_path_factory, model_files):
    """The random demo model's checkpoint with its config in ``meta['cfg']`` (as MMEngine's
    runner writes it), and a small phantom NIfTI."""
    from mmengine.config import Config

    from acsdet.testing.ct_files import head_to_feet_phantom, lps_image
    out = tmp_path_factory.mktemp('carried')
    ckpt = torch.load(model_files[1], weights_only=False)
    ckpt['meta']['cfg'] = Config.fromfile(CONFIG_DEMO).pretty_text
    torch.save(ckpt, out / 'model.pth')
    hu, _ = head_to_feet_phantom(num_slices=12, size=64)
    sitk.WriteImage(lps_image(hu, (2.0, 0.8, 0.8)), str(out / 'scan.nii.gz'))
    return out


def test_the_checkpoint_alone_runs_the_model_it_carries(carried, capsys):
    from acsdet.apis import LesionDetector
    from acsdet.io import read_ct
    vol = read_ct(str(carried / 'scan.nii.gz'))
    alone = LesionDetector(checkpoint=str(carried / 'model.pth'), score_thr=0.0)
    given = LesionDetector(CONFIG_DEMO, str(carried / 'model.pth'), score_thr=0.0)
    assert alone.config_source == 'checkpoint' and given.config_source == 'given'
    a, b = alone(vol, (4, 7)), given(vol, (4, 7))
    assert len(a.detections) == len(b.detections) > 0
    np.testing.assert_allclose([d['box'] for d in a.detections], [d['box'] for d in b.detections])
    out = carried / 'out'
    assert main([
        'infer',
        str(carried / 'model.pth'),
        str(carried / 'scan.nii.gz'), '--out-dir',
        str(out), '--slices', '4:7', '--no-progress'
    ]) == 0
    printed = capsys.readouterr().out
    assert f'config: the one {carried / "model.pth"} carries' in printed
    assert 'mode: per-slice (per slice: trained on D-slice stacks alone' in printed
    assert 'precision fp32' in printed
    with open(out / 'scan' / 'lesions.json') as f:
        assert json.load(f)['config'].endswith('(the config it carries)')


def test_dicom_outputs_without_the_dicom_extra_name_it(monkeypatch):
    from acsdet.export.dicom_kit import DicomOutputError, require_dicom_extra
    monkeypatch.setitem(sys.modules, 'highdicom', None)  # as if not installed
    with pytest.raises(DicomOutputError, match=r"pip install 'acsdet\[dicom\]'"):
        require_dicom_extra()


def test_an_mmcv_without_its_compiled_ops_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'mmcv.ops', None)  # as mmcv-lite
    with pytest.raises(SystemExit) as e:
        main(['infer', CONFIG_DEMO, 'scan.nii.gz', '--out-dir', 'o'])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and '\n' not in err
    assert 'acsdet infer: error: acsdet needs mmcv with its compiled ops' in err
