"""Hooks: a progress bar for validation/testing, DeepLesion key-slice visualisation and the
checkpoints' architecture record."""
import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from mmdet.registry import HOOKS

from ..deeplesion.boxes import continuous_to_inclusive
from ..deeplesion.naming import image_key
from ..deeplesion.png import decode_slice
from ..utils import atomic_write
from ..utils.hu import SOFT_TISSUE_WINDOW, window_to_uint8
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


def draw_key_slice(hu: np.ndarray,
                   pred_boxes: np.ndarray,
                   pred_scores: np.ndarray,
                   pred_masks: Optional[np.ndarray],
                   gt_recists: Sequence,
                   gt_boxes: Sequence,
                   score_thr: float = 0.3,
                   window=SOFT_TISSUE_WINDOW) -> np.ndarray:
    """BGR picture of a key slice (soft-tissue window): predictions in red (boxes, masks,
    scores), ground truth in green (box) with its RECIST diameters in yellow. Boxes are
    MMDetection's continuous boxes; their last pixel row and column are drawn."""
    img = cv2.cvtColor(window_to_uint8(hu, window), cv2.COLOR_GRAY2BGR)
    keep = pred_scores >= score_thr
    if pred_masks is not None and len(pred_masks):
        overlay = img.copy()
        for m in np.asarray(pred_masks)[keep]:
            overlay[m.astype(bool)] = (0, 0, 255)
        img = cv2.addWeighted(overlay, 0.3, img, 0.7, 0)
    for box in continuous_to_inclusive(np.reshape(gt_boxes, (-1, 4))):
        x1, y1, x2, y2 = np.round(box).astype(int)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 200, 0), 1)
    for rec in gt_recists:
        if rec is None:
            continue
        p = np.round(np.asarray(rec, float).reshape(4, 2)).astype(int)
        cv2.line(img, tuple(p[0]), tuple(p[1]), (0, 255, 255), 1)
        cv2.line(img, tuple(p[2]), tuple(p[3]), (0, 255, 255), 1)
    for box, s in zip(continuous_to_inclusive(pred_boxes[keep]), pred_scores[keep]):
        x1, y1, x2, y2 = np.round(box).astype(int)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 255), 1)
        cv2.putText(img, f'{s:.2f}', (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (0, 0, 255), 1, cv2.LINE_AA)
    return img


@HOOKS.register_module()
class DeepLesionVisualizationHook(Hook):
    """Write each tested key slice with predictions and GT to ``out_dir`` (``--show-dir``).

    The key slice is re-read from its PNG in HU and shown in the soft-tissue window; predictions
    with score >= ``score_thr`` are drawn (boxes, masks), GT boxes and RECIST diameters too.
    Pictures are written atomically (a symlink in ``out_dir`` is replaced, not written through).
    """

    def __init__(self, out_dir: str, score_thr: float = 0.3, max_images: Optional[int] = None):
        self.out_dir, self.score_thr, self.max_images = out_dir, score_thr, max_images
        self._count = 0

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.max_images is not None and self._count >= self.max_images:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        for sample in outputs:
            meta = sample.metainfo
            hu = decode_slice(meta['img_path'])
            pred = sample.pred_instances
            masks = pred.masks.cpu().numpy() if 'masks' in pred else None
            gt = [a for a in meta.get('instances', []) if not a.get('ignore_flag', 0)]
            img = draw_key_slice(hu,
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
