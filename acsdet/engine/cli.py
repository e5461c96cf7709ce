"""Helpers shared by ``tools/train.py`` and ``tools/test.py``."""
import warnings

import torch
from mmengine.config import Config


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader's dataset at ``data_root`` (the config's one data-root variable is
    resolved into each dataset when the config is read, so it is re-set on each here)."""
    if not data_root.endswith('/'):
        data_root += '/'
    cfg.data_root = data_root
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not loader:
            continue
        ds = loader.dataset
        while 'dataset' in ds and 'data_root' not in ds:  # wrappers (RepeatDataset, ...)
            ds = ds.dataset
        ds.data_root = data_root


def enable_amp(cfg: Config) -> bool:
    """Switch to mixed precision if CUDA is there; on CPU warn and keep fp32. Returns whether on."""
    if not torch.cuda.is_available():
        warnings.warn('--amp needs a CUDA GPU; none is available, so training continues in fp32')
        return False
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    return True


def cpu_friendly(cfg: Config) -> None:
    """Use the gloo backend when no GPU is present (NCCL needs CUDA)."""
    if not torch.cuda.is_available() and cfg.get('env_cfg', {}).get('dist_cfg'):
        cfg.env_cfg.dist_cfg.backend = 'gloo'
