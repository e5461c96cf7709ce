"""Distributed runs on any machine: MMEngine's launchers with CUDA, and the same launchers on CPU.

MMEngine's ``pytorch``, ``slurm`` and ``mpi`` launchers call ``torch.cuda.set_device`` before
initialising the process group, and its runner wraps the model in DDP with
``device_ids=[LOCAL_RANK]``; both fail without a GPU. :func:`setup_distributed` fills the gap
the way MMEngine allows it: on a machine without CUDA it initialises the ``gloo`` process group
itself from the launcher's environment (the runner then finds it initialised and skips its own
``init_dist``) and configures the wrapper for CPU modules (``device_ids=None``). With CUDA it
changes nothing: MMEngine's own path (NCCL, one GPU per process) runs.
"""
import datetime
import os
import subprocess
import warnings
from typing import Dict

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

LAUNCHERS = ('pytorch', 'slurm', 'mpi')


def launcher_env(launcher: str, environ=None) -> Dict[str, str]:
    """``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` of this
    process under ``launcher``, read as MMEngine's ``init_dist`` reads them (torchrun sets them
    for 'pytorch'; Slurm's ``SLURM_*`` and Open MPI's ``OMPI_COMM_WORLD_*`` variables for the
    others). Pure: returns the values, sets nothing."""
    env = os.environ if environ is None else environ

    def need(key):
        if key not in env:
            raise RuntimeError(f'--launcher {launcher}: the environment variable {key} is not set '
                               '(start the run with tools/dist_train.sh, torchrun, srun or mpirun)')
        return env[key]

    if launcher == 'pytorch':
        out = dict(
            RANK=need('RANK'),
            WORLD_SIZE=need('WORLD_SIZE'),
            LOCAL_RANK=env.get('LOCAL_RANK', '0'),
            MASTER_ADDR=need('MASTER_ADDR'),
            MASTER_PORT=need('MASTER_PORT'))
    elif launcher == 'slurm':
        addr = env.get('MASTER_ADDR')
        if addr is None:
            nodes = need('SLURM_NODELIST')
            addr = subprocess.getoutput(f'scontrol show hostname {nodes} | head -n1').strip()
        out = dict(
            RANK=need('SLURM_PROCID'),
            WORLD_SIZE=need('SLURM_NTASKS'),
            LOCAL_RANK=env.get('SLURM_LOCALID', '0'),
            MASTER_ADDR=addr,
            MASTER_PORT=env.get('MASTER_PORT', '29500'))
    elif launcher == 'mpi':
        out = dict(
            RANK=need('OMPI_COMM_WORLD_RANK'),
            WORLD_SIZE=need('OMPI_COMM_WORLD_SIZE'),
            LOCAL_RANK=need('OMPI_COMM_WORLD_LOCAL_RANK'),
            MASTER_ADDR=need('MASTER_ADDR'),
            MASTER_PORT=env.get('MASTER_PORT', '29500'))
    else:
        raise ValueError(f'unknown launcher {launcher!r}; choose from {LAUNCHERS}')
    return out


def cpu_model_wrapper(cfg: Config) -> dict:
    """The DDP wrapper config for CPU modules: MMEngine's default wrapper and settings
    (``broadcast_buffers=False``, the config's ``find_unused_parameters``) with
    ``device_ids=None``, as DDP requires for modules on the CPU."""
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    return wrapper


def setup_distributed(cfg: Config) -> bool:
    """Prepare ``cfg.launcher`` before the runner is built; returns whether the run is
    distributed. With CUDA: nothing to do (MMEngine initialises NCCL; ``sync_bn`` works). Without:
    the gloo process group is initialised here with the config's ``dist_cfg.timeout``, the model
    wrapper is set for CPU modules, and a ``sync_bn`` setting is dropped with a warning
    (``SyncBatchNorm`` runs on GPUs only)."""
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none':
        return False
    if launcher not in LAUNCHERS:
        raise ValueError(f'unknown launcher {launcher!r}; choose from none, {", ".join(LAUNCHERS)}')
    if torch.cuda.is_available():
        return True
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    cfg.model_wrapper_cfg = cpu_model_wrapper(cfg)
    if cfg.get('sync_bn'):
        warnings.warn(f'sync_bn={cfg.sync_bn!r} needs GPUs (SyncBatchNorm has no CPU kernel); '
                      'this CPU run keeps per-process BatchNorm')
        cfg.sync_bn = None
    if not torch_dist.is_initialized():
        env = launcher_env(launcher)
        # env:// as MMEngine does (under torchrun it joins the store torchrun's agent hosts);
        # the runner and the DDP wrapper read RANK / LOCAL_RANK from the environment too
        os.environ.update(env)
        timeout = dist_cfg.get('timeout')
        kwargs = dict(timeout=datetime.timedelta(seconds=timeout)) if timeout else {}
        torch_dist.init_process_group(backend='gloo', init_method='env://', **kwargs)
    return True


def finish_distributed() -> None:
    """End a distributed run cleanly: wait for every process, then destroy the process group.
    Left to the interpreter's exit, gloo's threads can outlive it (the process then aborts with
    'terminate called without an active exception' after its work is done). No-op when not
    distributed."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
