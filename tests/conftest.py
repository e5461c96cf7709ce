import os
import sys

import pytest
import torch

from .helpers import CONFIG_DEMO, EPOCHS, ROOT

if ROOT not in sys.path:  # tools/ and data_converters/ are scripts, importable from the root
    sys.path.insert(0, ROOT)

SLOW_FIXTURES = {'e2e_trained', 'dist_training'}  # minutes of CPU training each
#: The tests on the end-to-end run's data or model: one pytest-xdist group, so that one worker
#: trains the model once while the other runs the rest of the suite (``make test``: ``-n 2
#: --dist loadgroup``).
E2E_FIXTURES = {'e2e_trained', 'e2e_data'}
E2E_GROUP = 'e2e'
#: Torch threads: the end-to-end chain (the longest path) keeps 2, the tests beside it take 1 when
#: two workers share the 2 cores; a plain ``pytest`` run gives every test 2.
E2E_THREADS = 2
OTHER_THREADS = 1 if os.environ.get('PYTEST_XDIST_WORKER') else 2

torch.set_num_threads(E2E_THREADS)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's loadgroup reads the groups
def pytest_collection_modifyitems(config, items):
    """Every test that needs a trained model (directly or through another fixture) is
    ``slow``: ``make test-fast`` (``-m 'not slow'``) leaves them out. Every test on the
    end-to-end data or model is in the xdist group ``e2e`` (one worker, one training run)."""
    for item in items:
        names = set(getattr(item, 'fixturenames', ()))
        if SLOW_FIXTURES & names:
            item.add_marker(pytest.mark.slow)
        if E2E_FIXTURES & names:
            item.add_marker(pytest.mark.xdist_group(E2E_GROUP))


@pytest.fixture(autouse=True)
def _seed_and_scope(request):
    """Every test starts seeded, with its torch threads, and in MMDetection's registry scope (a
    Runner built by an earlier test may have left another scope current)."""
    from mmengine.registry import init_default_scope
    e2e = bool(E2E_FIXTURES & set(request.fixturenames))
    torch.set_num_threads(E2E_THREADS if e2e else OTHER_THREADS)
    torch.manual_seed(0)
    init_default_scope('mmdet')


@pytest.fixture(scope='session')
def model_files(tmp_path_factory):
    """The demo config and a randomly initialised checkpoint of it (with its architecture
    record): a model that is not symmetric in depth."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from acsdet.engine.architecture import ARCH_KEY, model_architecture
    from mmdet.registry import MODELS
    out = tmp_path_factory.mktemp('model')
    init_default_scope('mmdet')
    torch.manual_seed(0)
    cfg = Config.fromfile(CONFIG_DEMO)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = out / 'random.pth'
    torch.save({
        'state_dict': model.state_dict(),
        'meta': {
            ARCH_KEY: model_architecture(cfg.model)
        }
    }, path)
    return CONFIG_DEMO, str(path)


# ---- the end-to-end training run, shared by the end-to-end and the patient-CT tests ----------


@pytest.fixture(scope='session')
def e2e_data(tmp_path_factory):
    """A small synthetic DeepLesion (48 series, 192 x 192), converted."""
    from acsdet.preparation.deeplesion_coco import convert_deeplesion
    from acsdet.testing.synthetic import make_synthetic_deeplesion
    root = tmp_path_factory.mktemp('e2e')
    make_synthetic_deeplesion(
        str(root), num_series=48, seed=7, image_size=192, context_mm=6, lesion_mm=(12, 50))
    convert_deeplesion(str(root), str(root / 'annotations'))
    return root


def _options(work):
    # score on the training key slices: the test is whether the whole stack learns
    return [
        '--cfg-options', f'train_cfg.max_epochs={EPOCHS}', 'train_cfg.val_interval=1000',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        'test_dataloader.dataset.ann_file=annotations/deeplesion_train.json',
        f'param_scheduler.1.milestones=[{EPOCHS - 2},{EPOCHS - 1}]',
        'default_hooks.logger.interval=50', 'randomness.seed=0'
    ]


@pytest.fixture(scope='session')
def e2e_trained(e2e_data, tmp_path_factory):
    """The demo model trained briefly on ``e2e_data`` (minutes): ``(work dir, untrained metrics,
    trained metrics)``; the checkpoint is ``work/train/epoch_{EPOCHS}.pth``."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from tools import test as test_tool
    from tools import train as train_tool
    init_default_scope('mmdet')
    torch.set_num_threads(E2E_THREADS)  # the model and README figures were made with 2 threads
    work = tmp_path_factory.mktemp('work')
    # the untrained model, saved as a checkpoint and tested through tools/test.py
    runner = Runner.from_cfg(
        train_tool.build_cfg(
            train_tool.parse_args(
                [CONFIG_DEMO, '--work-dir',
                 str(work / 'init'), '--data-root',
                 str(e2e_data)] + _options(work))))
    runner.model.init_weights()
    torch.save({'state_dict': runner.model.state_dict()}, work / 'untrained.pth')
    untrained = test_tool.main([
        CONFIG_DEMO,
        str(work / 'untrained.pth'), '--work-dir',
        str(work / 'test0'), '--data-root',
        str(e2e_data)
    ] + _options(work))
    train_tool.main([
        CONFIG_DEMO, '--work-dir',
        str(work / 'train'), '--data-root',
        str(e2e_data), '--slice-cache',
        str(work / 'slices')
    ] + _options(work))
    ckpt = work / 'train' / f'epoch_{EPOCHS}.pth'
    trained = test_tool.main([
        CONFIG_DEMO,
        str(ckpt), '--work-dir',
        str(work / 'test'), '--data-root',
        str(e2e_data), '--out',
        str(work / 'results.pkl'), '--show-dir',
        str(work / 'show')
    ] + _options(work))
    return work, untrained, trained


# ---- one synthetic CT in every format (the reading, detection and CLI tests) -----------------


@pytest.fixture(scope='session')
def phantom(e2e_data, tmp_path_factory):
    """One synthetic series as a DeepLesion PNG folder, NIfTI in four storage orientations and
    a DICOM series (with a second series in its folder); its lesion rows from DL_info.csv."""
    import SimpleITK as sitk

    from acsdet.deeplesion.info import read_dl_info
    from acsdet.io import read_ct
    from acsdet.testing.ct_files import ORIENTATIONS, lps_image, stored_image, write_dicom_series
    out = tmp_path_factory.mktemp('phantom')
    records, _ = read_dl_info(str(e2e_data / 'DL_info.csv'))
    series = records[0].series_dir
    png = str(e2e_data / 'Images_png' / series)
    vol = read_ct(png, dl_info=str(e2e_data / 'DL_info.csv'))
    # the same physical image stored in LPS order
    img = lps_image(vol.hu, vol.spacing, float(vol.to_lps([0, 0, 0])[2]))
    files = dict(png=png)
    for name, (perm, flip) in ORIENTATIONS.items():
        path = str(out / f'{name}.nii.gz')
        sitk.WriteImage(stored_image(img, perm, flip), path)
        files[name] = path
    dicom = out / 'dicom'
    uid = write_dicom_series(vol.hu, vol.spacing, dicom, positions=-vol.z_positions)
    other = write_dicom_series(vol.hu[:3] + 100, (5.0, 1.0, 1.0), dicom, seed=1)
    files['dicom'] = str(dicom)
    return dict(
        volume=vol,
        files=files,
        uid=uid,
        other_uid=other,
        records=[r for r in records if r.series_dir == series],
        data=e2e_data)
