"""A hook for the distributed tests: each rank saves what it trained on and its final weights.

Imported into tools/train.py runs through the config's ``custom_imports`` (the repository root
is on ``sys.path`` there). Writes ``probe_rank{R}.pt`` into the work dir after training, with
``rank``, ``world_size``, ``wrapper`` (the model wrapper's class name), ``lr`` (the schedulers'
base), ``seen`` (``[(epoch, img_id), ...]``) and ``params`` (``{name: tensor}``).
"""
import os.path as osp

import torch
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdet.registry import HOOKS


@HOOKS.register_module()
class DistProbeHook(Hook):
    priority = 'LOWEST'

    def before_train(self, runner):
        self.seen = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for sample in data_batch['data_samples']:
            self.seen.append((runner.epoch, int(sample.img_id)))

    def after_train(self, runner):
        rank, world = get_dist_info()
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(
            dict(
                rank=rank,
                world_size=world,
                wrapper=type(runner.model).__name__,
                lr=runner.optim_wrapper.optimizer.param_groups[0]['initial_lr'],  # before warm-up
                seen=self.seen,
                params={
                    k: v.detach().clone()
                    for k, v in model.named_parameters()
                }),
            osp.join(runner.work_dir, f'probe_rank{rank}.pt'))
