"""The runner side of ``acsdet train`` and ``acsdet test``: reading a config with the command
line applied, loading checkpoints strictly, resuming, the runner (their parsers are in
:mod:`acsdet.cli`)."""
import os.path as osp
import pickle
import warnings
from typing import Optional

import torch
from mmengine.config import Config

from ..defaults import NUM_SLICES
from .architecture import CheckpointMismatch, load_state_strictly
from .hooks import ensure_architecture_hook


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader's dataset at ``data_root`` (the config's one data-root variable is
    resolved into each dataset when the config is read, so it is re-set on each here)."""
    if not data_root.endswith('/'):
        data_root += '/'
    cfg.data_root = data_root
    for ds in _datasets(cfg):
        ds.data_root = data_root


def innermost_dataset(loader_cfg):
    """The dataset config that holds the pipeline, through wrappers (RepeatDataset and the like)
    of a dataloader config."""
    ds = loader_cfg.dataset
    while 'dataset' in ds and 'pipeline' not in ds:
        ds = ds.dataset
    return ds


def _datasets(cfg: Config):
    """The innermost dataset config of each dataloader."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader:
            yield innermost_dataset(loader)


def check_num_slices(cfg: Config, config_name: str = 'the config') -> None:
    """Every dataloader's slice loading step loads the D slices the backbone takes: else a
    ``ValueError`` naming the loader and both numbers, before any data is read."""
    backbone = (cfg.get('model') or {}).get('backbone') or {}
    d = backbone.get('num_slices', NUM_SLICES)
    if 'num_slices' not in backbone and backbone.get('type') != 'TruncatedDenseNet':
        return  # another backbone: its own rules
    context = backbone.get('train_context_slices', 0) or 0
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not loader:
            continue
        want = d + 2 * context if key == 'train_dataloader' else d
        for step in innermost_dataset(loader).get('pipeline') or []:
            if step.get('type') in ('LoadDeepLesionSlices', 'LoadVolumeSlices'):
                got = step.get('num_slices', NUM_SLICES)
                if got != want:
                    what = f'{d} + 2 x {context} context slices' if want != d else f'{d}'
                    raise ValueError(f'{config_name}: the {key} pipeline loads {got} slices, the '
                                     f'backbone takes {what}: set the same num_slices in both')


def set_slice_cache(cfg: Config, cache_dir: str) -> int:
    """Give every ``LoadDeepLesionSlices`` step of the dataloaders the disk slice cache
    ``cache_dir``; returns how many steps were set (0 raises: the config loads no slices)."""
    n = 0
    for ds in _datasets(cfg):
        for step in ds.get('pipeline', []):
            if step.get('type') == 'LoadDeepLesionSlices':
                step['cache_dir'] = cache_dir
                n += 1
    if not n:
        raise ValueError('--slice-cache: no LoadDeepLesionSlices step in the dataloaders')
    return n


def enable_amp(cfg: Config) -> bool:
    """Switch to mixed precision if CUDA is there; on CPU warn and keep fp32. Returns whether on."""
    if not torch.cuda.is_available():
        warnings.warn('--amp needs a CUDA GPU; none is available, so training continues in fp32')
        return False
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    return True


def load_config(path: str,
                launcher: str = 'none',
                cfg_options: Optional[dict] = None,
                data_root: Optional[str] = None,
                work_dir: Optional[str] = None,
                slice_cache: Optional[str] = None) -> Config:
    """Read a config and apply the command line the MMDetection way: ``--cfg-options``, then
    ``--data-root`` and ``--slice-cache``; the work dir is CLI > config >
    ``work_dirs/<config name>``. Every run records (and checks) checkpoints' architecture
    (:class:`~acsdet.engine.hooks.ArchitectureRecordHook`); a pipeline that loads another number
    of slices than the backbone takes is refused (:func:`check_num_slices`)."""
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if data_root:
        set_data_root(cfg, data_root)
    if slice_cache:
        set_slice_cache(cfg, slice_cache)
    ensure_architecture_hook(cfg)
    check_num_slices(cfg, path)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def load_checkpoint_strictly(runner, checkpoint: str) -> None:
    """Load ``checkpoint`` into the runner's model with every key matching both ways (MMEngine's
    ``load_from`` only warns about missing keys, so a foreign checkpoint would be tested as a
    half-initialised model), after the runner's ``after_load_checkpoint`` hooks (the
    architecture record). Raises ``SystemExit`` with a message naming the file."""
    from mmengine.runner.checkpoint import _load_checkpoint
    if not osp.isfile(checkpoint):
        raise SystemExit(f'checkpoint {checkpoint}: no such file')
    model = runner.model.module if hasattr(runner.model, 'module') else runner.model
    try:
        loaded = _load_checkpoint(checkpoint, map_location='cpu')
        runner.call_hook('after_load_checkpoint', checkpoint=loaded)
        load_state_strictly(model, loaded, checkpoint, runner.cfg.filename)
    except CheckpointMismatch as e:
        raise SystemExit(str(e)) from None
    except (OSError, ValueError, pickle.UnpicklingError) as e:  # empty, truncated, no checkpoint
        raise SystemExit(f'checkpoint {checkpoint}: {e}') from None
    runner.logger.info(f'Load checkpoint from {checkpoint}')


def resolve_resume(cfg: Config, resume: Optional[str]) -> None:
    """``--resume`` (``'auto'``: the work dir's latest checkpoint) or ``--resume CKPT`` into the
    config. A named checkpoint that does not exist is an error; an automatic resume that finds
    none says so and starts from scratch (what a first run of a restartable job needs)."""
    if resume is None:
        return
    if resume != 'auto':
        if not osp.isfile(resume):
            raise SystemExit(f'--resume {resume}: no such checkpoint')
        cfg.resume, cfg.load_from = True, resume
        return
    from mmengine.runner import find_latest_checkpoint
    latest = find_latest_checkpoint(cfg.work_dir) if osp.isdir(cfg.work_dir) else None
    if latest is None:
        print(
            f'--resume: no checkpoint in {cfg.work_dir} (no last_checkpoint file or *.pth); '
            'training starts from scratch',
            flush=True)
        cfg.resume, cfg.load_from = False, None
    else:
        print(f'--resume: resuming from {latest}', flush=True)
        cfg.resume, cfg.load_from = True, latest


def build_runner(cfg: Config):
    """The config's runner (its own ``runner_type`` or MMEngine's), the distributed set-up done
    first (gloo on machines without CUDA, where MMEngine's launchers fail)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from .dist import setup_distributed
    setup_distributed(cfg)
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
