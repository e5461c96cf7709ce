"""Multi-process training and testing on this CPU machine, through the shipped launch scripts.

``tools/dist_train.sh`` / ``tools/dist_test.sh`` (torchrun, MMEngine's 'pytorch' launcher) and
``tools/slurm_test.sh`` (MMEngine's 'slurm' launcher, under a stand-in ``srun`` that starts the
tasks on this machine with Slurm's variables) run 2 processes with the gloo backend that
:func:`acsdet.engine.dist.setup_distributed` initialises. Checked: data-parallel training
(disjoint data on the ranks, identical parameters, one checkpoint and one log from rank 0, the
linear learning-rate rule, ``--resume``) and distributed testing (every test image counted once:
predictions and FROC equal to one process's, on a test set of odd size).
"""
import json
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

from acsdet.engine.dist import cpu_model_wrapper, launcher_env, setup_distributed

from ..helpers import CONFIG_DEMO, EPOCHS, ROOT

TOOLS = osp.join(ROOT, 'tools')
TRAIN_IMAGES = 12  # 3 iterations an epoch: 2 processes x 2 images


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run(cmd, **env):
    """Run a launch script / tool with the suite's interpreter; returns its output (fails the
    test with the output when it exits non-zero)."""
    full = dict(os.environ, PYTHON=sys.executable, MASTER_PORT=str(_free_port()), **env)
    full.pop('MASTER_ADDR', None)
    # the tools import the installed acsdet; the probe config also imports tests.dist_probe
    full['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, os.environ.get('PYTHONPATH')]))
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


# ---- training ----------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def dist_data(tmp_path_factory):
    """A small synthetic DeepLesion of the training runs' own (not the end-to-end set: they run on
    the other pytest-xdist worker, beside the end-to-end training)."""
    from acsdet.preparation.deeplesion_coco import convert_deeplesion
    from acsdet.testing.synthetic import make_synthetic_deeplesion
    root = tmp_path_factory.mktemp('dist_data')
    make_synthetic_deeplesion(
        str(root), num_series=16, seed=7, image_size=192, context_mm=6, lesion_mm=(12, 50))
    convert_deeplesion(str(root), str(root / 'annotations'))
    images = json.loads((root / 'annotations' / 'deeplesion_train.json').read_text())['images']
    assert len(images) >= TRAIN_IMAGES
    return root


@pytest.fixture(scope='module')
def dist_training(dist_data, tmp_path_factory):
    """2 processes x 2 images for 2 epochs with --auto-scale-lr, then --resume to epoch 3."""
    tmp = tmp_path_factory.mktemp('dist_train')
    config = tmp / 'probe_config.py'
    config.write_text(f'_base_ = {CONFIG_DEMO!r}\n'
                      "custom_imports = dict(imports=['acsdet', 'tests.dist_probe'], "
                      'allow_failed_imports=False)\n'
                      "custom_hooks = [dict(type='DistProbeHook')]\n"
                      'val_dataloader = None\nval_cfg = None\nval_evaluator = None\n'
                      "default_hooks = dict(checkpoint=dict(save_best=None))\n")
    work = tmp / 'work'
    common = [
        '--work-dir',
        str(work), '--data-root',
        str(dist_data), '--auto-scale-lr', '--cfg-options',
        f'train_dataloader.dataset.indices={TRAIN_IMAGES}', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1', 'randomness.seed=0'
    ]
    first = _run(['bash', osp.join(TOOLS, 'dist_train.sh'),
                  str(config), '2'] + common + ['train_cfg.max_epochs=2'])
    probes = [torch.load(work / f'probe_rank{r}.pt') for r in (0, 1)]
    second = _run(['bash', osp.join(TOOLS, 'dist_train.sh'),
                   str(config), '2', '--resume'] + common + ['train_cfg.max_epochs=3'])
    resumed = [torch.load(work / f'probe_rank{r}.pt') for r in (0, 1)]
    return work, first, probes, second, resumed


def test_dist_train_is_data_parallel(dist_training):
    work, _, probes, _, _ = dist_training
    assert [p['rank'] for p in probes] == [0, 1] and {p['world_size'] for p in probes} == {2}
    assert {p['wrapper'] for p in probes} == {'MMDistributedDataParallel'}
    for epoch in (0, 1):  # each epoch: the ranks see disjoint halves of the training set
        ids = [[i for e, i in p['seen'] if e == epoch] for p in probes]
        assert len(ids[0]) == len(ids[1]) == TRAIN_IMAGES // 2
        assert not set(ids[0]) & set(ids[1])
        assert len(set(ids[0]) | set(ids[1])) == TRAIN_IMAGES
    # different data, averaged gradients: bit-identical parameters on both ranks
    p0, p1 = probes[0]['params'], probes[1]['params']
    assert p0.keys() == p1.keys() and len(p0) > 100
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k
    # the checkpoint (written by rank 0) holds them; training moved them from the start
    ckpt = torch.load(work / 'epoch_2.pth', map_location='cpu', weights_only=False)
    for k in p0:
        assert torch.equal(ckpt['state_dict'][k], p0[k]), k
    start = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert any(not torch.equal(start['state_dict'][k], p0[k]) for k in p0)
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 2 * TRAIN_IMAGES // 4


def test_dist_train_lr_rule(dist_training):
    # --auto-scale-lr: lr x (2 processes x 2 images) / base_batch_size 16, the linear rule
    base = Config.fromfile(CONFIG_DEMO)
    expected = base.optim_wrapper.optimizer.lr * 4 / base.auto_scale_lr.base_batch_size
    assert 'Scaling the original LR by 0.25' in dist_training[1]
    for p in dist_training[2]:
        assert p['lr'] == pytest.approx(expected, rel=1e-9)


def test_dist_train_logs_once_from_rank0(dist_training):
    work, first, _, _, _ = dist_training
    logs = sorted(work.glob('*/*.log'))
    assert len(logs) == 2, logs  # one per run (the first and the resumed), none per rank
    assert not list(work.rglob('*rank1*.log'))
    text = logs[0].read_text()
    for it in (1, 2, 3):  # every iteration is logged once, by rank 0
        assert first.count(f'Epoch(train) [1][{it}/3]') == 1
        assert text.count(f'Epoch(train) [1][{it}/3]') == 1
    assert 'Distributed training: True' in text and "'backend': 'gloo'" in text
    assert sorted(p.name
                  for p in work.glob('*.pth')) == ['epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth']


def test_dist_train_resume(dist_training):
    work, _, probes, second, resumed = dist_training
    assert 'resumed epoch: 2' in second and 'resuming from' in second
    for p in resumed:  # only the third epoch ran, on both ranks
        assert {e for e, _ in p['seen']} == {2} and len(p['seen']) == TRAIN_IMAGES // 2
    p0, p1 = resumed[0]['params'], resumed[1]['params']
    assert all(torch.equal(p0[k], p1[k]) for k in p0)
    ckpt = torch.load(work / 'epoch_3.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['epoch'] == 3 and ckpt['meta']['iter'] == 3 * TRAIN_IMAGES // 4
    assert all(torch.equal(ckpt['state_dict'][k], p0[k]) for k in p0)
    assert any(not torch.equal(probes[0]['params'][k], p0[k]) for k in p0)


# ---- testing -----------------------------------------------------------------------------------
FAKE_SRUN = r'''#!/usr/bin/env bash
# stand-in for srun: start --ntasks tasks of the command on this machine with Slurm's variables
n=1
while [ $# -gt 0 ]; do
  case "$1" in
    --ntasks=*) n=${1#--ntasks=} ;;
    -p|--partition) shift ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
pids=()
for ((i = 0; i < n; i++)); do
  SLURM_PROCID=$i SLURM_NTASKS=$n SLURM_LOCALID=$i SLURM_NODELIST=127.0.0.1 "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
'''


def test_dist_test_counts_every_image_once(e2e_data, e2e_trained, tmp_path):
    """1 process, 2 processes (torchrun) and 2 Slurm tasks give the same predictions and the same
    FROC at every operating point, on an odd number of test images (the sampler pads one)."""
    ckpt = str(e2e_trained[0] / 'train' / f'epoch_{EPOCHS}.pth')
    ann = 'annotations/deeplesion_train.json'  # the images the short training learnt to find
    n = 15  # of the 44 images: enough for the odd-count padding and a non-trivial FROC
    assert n % 2 == 1 and n < len(json.loads((e2e_data / ann).read_text())['images'])

    def args(name):
        return [
            '--work-dir',
            str(tmp_path / name), '--out',
            str(tmp_path / name / 'results.pkl'), '--data-root',
            str(e2e_data), '--cfg-options', f'test_dataloader.dataset.ann_file={ann}',
            f'test_dataloader.dataset.indices={n}', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False'
        ]

    # one thread a process in every run, so that the arithmetic is the same bit for bit
    _run(
        [sys.executable, osp.join(TOOLS, 'test.py'), CONFIG_DEMO, ckpt] + args('one'),
        OMP_NUM_THREADS='1')
    _run(
        ['bash', osp.join(TOOLS, 'dist_test.sh'), CONFIG_DEMO, ckpt, '2'] + args('two'),
        OMP_NUM_THREADS='1')
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'scontrol').write_text('#!/usr/bin/env bash\necho "${@: -1}"\n')  # show hostname X
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    slurm_out = _run(
        ['bash', osp.join(TOOLS, 'slurm_test.sh'), 'cpu', 'acsdet-test', CONFIG_DEMO, ckpt] +
        args('slurm'),
        OMP_NUM_THREADS='1',
        GPUS='2',
        GPUS_PER_NODE='0',
        PATH=f'{bin_dir}:{os.environ["PATH"]}')
    assert 'Distributed launcher: slurm' in slurm_out

    results = {}
    for name in ('one', 'two', 'slurm'):
        froc = json.loads((tmp_path / name / 'froc.json').read_text())
        with open(tmp_path / name / 'results.pkl', 'rb') as f:
            results[name] = froc, pickle.load(f)
    froc1, dets1 = results['one']
    assert froc1['num_images'] == n and froc1['average'] > 0.1
    for name in ('two', 'slurm'):
        froc, dets = results[name]
        assert froc['num_images'] == n and froc['num_lesions'] == froc1['num_lesions']
        assert froc['sensitivities'] == froc1['sensitivities'], name
        assert froc['average'] == froc1['average'] and froc['subsets'] == froc1['subsets']
        assert [d['img_path'] for d in dets] == [d['img_path'] for d in dets1]
        for a, b in zip(dets, dets1):
            np.testing.assert_array_equal(a['pred_instances']['bboxes'].numpy(),
                                          b['pred_instances']['bboxes'].numpy())
            np.testing.assert_array_equal(a['pred_instances']['scores'].numpy(),
                                          b['pred_instances']['scores'].numpy())


# ---- the set-up itself -------------------------------------------------------------------------
def test_slurm_train_script_builds_the_srun_call(tmp_path):
    """tools/slurm_train.sh: MMDetection's srun settings, tools/train.py with the work dir and the
    'slurm' launcher (an ``srun`` that prints its arguments stands in for Slurm)."""
    (tmp_path / 'srun').write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    (tmp_path / 'srun').chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', PYTHON='py', GPUS='16')
    out = subprocess.run(
        ['bash', osp.join(TOOLS, 'slurm_train.sh'), 'gpu', 'job', 'cfg.py', 'w', '--amp'],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True).stdout
    assert out.split('\n')[:-1] == [
        '-p', 'gpu', '--job-name=job', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
        '--cpus-per-task=5', '--kill-on-bad-exit=1', 'py', '-u',
        osp.join(TOOLS, 'train.py'), 'cfg.py', '--work-dir=w', '--amp', '--launcher=slurm'
    ]
    bad = subprocess.run(['bash', osp.join(TOOLS, 'slurm_train.sh'), 'gpu'],
                         env=env,
                         stderr=subprocess.PIPE,
                         text=True)
    assert bad.returncode == 2 and 'usage' in bad.stderr


def test_launcher_env():
    env = dict(
        SLURM_PROCID='3',
        SLURM_NTASKS='8',
        SLURM_LOCALID='1',
        MASTER_ADDR='node7',
        MASTER_PORT='1234')
    assert launcher_env('slurm', env) == dict(
        RANK='3', WORLD_SIZE='8', LOCAL_RANK='1', MASTER_ADDR='node7', MASTER_PORT='1234')
    ompi = dict(
        OMPI_COMM_WORLD_RANK='2',
        OMPI_COMM_WORLD_SIZE='4',
        OMPI_COMM_WORLD_LOCAL_RANK='0',
        MASTER_ADDR='h')
    assert launcher_env('mpi', ompi)['MASTER_PORT'] == '29500'
    with pytest.raises(RuntimeError, match='WORLD_SIZE is not set'):
        launcher_env('pytorch', dict(RANK='0'))
    with pytest.raises(ValueError, match='unknown launcher'):
        launcher_env('ssh', {})


def test_cpu_setup_keeps_wrapper_settings_and_drops_sync_bn(monkeypatch):
    cfg = Config.fromfile(CONFIG_DEMO)
    cfg.launcher = 'pytorch'
    cfg.find_unused_parameters = True
    cfg.sync_bn = 'torch'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: True)  # no group made here
    with pytest.warns(UserWarning, match='sync_bn'):
        assert setup_distributed(cfg) is True
    assert cfg.env_cfg.dist_cfg.backend == 'gloo' and cfg.sync_bn is None
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=True,
        device_ids=None)
    assert cpu_model_wrapper(
        Config(
            dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel',
                                        broadcast_buffers=True))))['broadcast_buffers'] is True
    none = Config.fromfile(CONFIG_DEMO)
    none.launcher = 'none'
    assert setup_distributed(none) is False and 'model_wrapper_cfg' not in none


def test_sync_bn_base_option():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'sync_bn.py'))
    assert cfg.sync_bn == 'torch'
