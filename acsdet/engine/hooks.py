"""Hooks: a progress bar for validation/testing, DeepLesion key-slice visualisation and the
checkpoints' architecture record."""
import os
import os.path as osp
from typing import Optional

import cv2
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from mmdet.registry import HOOKS

from ..deeplesion.naming import image_key
from ..deeplesion.png import decode_slice
from ..utils import atomic_write
from ..visualization import LesionVisualizer
from .architecture import ARCH_KEY, check_architecture, model_architecture


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """An ``mmengine.utils.ProgressBar`` over the test iterations, rank 0 only (MMEngine's loops
    log every ``interval`` iterations but show no bar)."""

    def __init__(self):
        self._bar = None

    def _start(self, loader):
        if is_main_process():
            self._bar = ProgressBar(len(loader))

    def _step(self):
        if self._bar is not None:
            self._bar.update()

    def _end(self):
        if self._bar is not None:
            self._bar.file.write('\n')
            self._bar = None

    def before_test_epoch(self, runner):
        self._start(runner.test_dataloader)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._step()

    def after_test_epoch(self, runner, metrics=None):
        self._end()


@HOOKS.register_module()
class DeepLesionVisualizationHook(Hook):
    """Write each tested key slice with predictions and GT to ``out_dir`` (``--show-dir``).

    The key slice is re-read from its PNG in HU and drawn by :class:`LesionVisualizer` (the
    runner's ``visualizer`` when it is one, else a default one: the soft-tissue window):
    predictions with score >= ``score_thr`` (boxes, masks, scores), GT boxes and RECIST
    diameters. Every rank writes its own samples. Pictures are written atomically (a symlink in
    ``out_dir`` is replaced, not written through).
    """

    def __init__(self, out_dir: str, score_thr: float = 0.3, max_images: Optional[int] = None):
        self.out_dir, self.score_thr, self.max_images = out_dir, score_thr, max_images
        self._count = 0
        self._visualizer: Optional[LesionVisualizer] = None

    def _get_visualizer(self, runner) -> LesionVisualizer:
        vis = getattr(runner, 'visualizer', None)
        if isinstance(vis, LesionVisualizer):
            return vis
        if self._visualizer is None:
            self._visualizer = LesionVisualizer(name=f'lesion_visualizer_{id(self)}')
        return self._visualizer

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.max_images is not None and self._count >= self.max_images:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        vis = self._get_visualizer(runner)
        for sample in outputs:
            meta = sample.metainfo
            hu = decode_slice(meta['img_path'])
            pred = sample.pred_instances
            masks = pred.masks.cpu().numpy() if 'masks' in pred else None
            gt = [a for a in meta.get('instances', []) if not a.get('ignore_flag', 0)]
            img = vis.key_slice(hu,
                                pred.bboxes.cpu().numpy(),
                                pred.scores.cpu().numpy(), masks, [a.get('recist') for a in gt],
                                [a['bbox'] for a in gt], self.score_thr)
            series, name = image_key(meta['img_path']).split('/')
            ok, png = cv2.imencode('.png', img)
            if not ok:
                raise OSError(f'cannot encode the picture of {meta["img_path"]}')
            atomic_write(
                osp.join(self.out_dir, f'{series}_{name}'),
                lambda f: f.write(png.tobytes()),
                binary=True,
                fsync=False)
            self._count += 1


@HOOKS.register_module()
class ArchitectureRecordHook(Hook):
    """Record the model's architecture in every checkpoint the runner saves, and refuse a
    checkpoint of another architecture when one is loaded (testing, resuming): see
    :mod:`acsdet.engine.architecture`. ``tools/train.py`` and ``tools/test.py`` add it to every
    run; the base runtime config lists it too."""

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[ARCH_KEY] = model_architecture(runner.cfg.model)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        path = runner.cfg.get('checkpoint') or runner.cfg.get('load_from') or 'the checkpoint'
        check_architecture(checkpoint, runner.cfg.model, path, runner.cfg.filename)


def ensure_architecture_hook(cfg) -> None:
    """Add :class:`ArchitectureRecordHook` to ``cfg.custom_hooks`` unless it is there."""
    hooks = list(cfg.get('custom_hooks', []) or [])
    if not any(h.get('type') in ('ArchitectureRecordHook', ArchitectureRecordHook) for h in hooks):
        hooks.append(dict(type='ArchitectureRecordHook'))
    cfg.custom_hooks = hooks
