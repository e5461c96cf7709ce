"""``LesionDetector``: a trained acsdet model applied to a patient's CT volume.

    detector = LesionDetector('configs/deeplesion_acs_7slice.py', 'best.pth', device='cpu')
    result = detector('scan.nii.gz')            # or a DICOM folder, or a CTVolume
    for lesion in result.lesions: print(lesion.recist_long_mm, lesion.center_lps_mm)

Every axial slice (or a range) becomes a key slice with its D neighbours sampled at the config's
slice interval exactly as in training (:func:`~acsdet.datasets.slices.volume_stack_plan`), goes
through the config's test pipeline (its DeepLesion loading step replaced by
:class:`~acsdet.datasets.transforms.LoadVolumeSlices`, its annotation loading dropped) and the
model in batches (this module: predict); the per-slice detections become 3D lesions in the
input's geometry (:mod:`acsdet.inference.restore`), which :mod:`acsdet.export` writes.
"""
import copy
import dataclasses
import hashlib
import json
import os.path as osp
import time
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from tqdm import tqdm

from ..datasets.transforms import LoadVolumeSlices
from ..datasets.transforms.loading import put_stack
from ..defaults import NUM_SLICES, TARGET_INTERVAL_MM
from ..engine.architecture import (check_architecture, config_from_checkpoint, default_volumetric,
                                   load_state_strictly)
from ..engine.cli import innermost_dataset
from ..io import CTVolume, read_ct
from ..models.backbones.depth_stream import BackboneOutput
from ..models.dense_heads import use_topk_proposals
from ..ops.roi_align import use_separable_roi_align
from ..utils import file_sha256
from ..utils.errors import naming
from .grouping import GroupingRule
from .precision import autocast_to, resolve_precision, run_layers_in
from .restore import masks_in_boxes, restore_lesions
from .results import DetectionResult, Provenance


def check_device(device: str) -> str:
    """``device`` if torch can use it here; else a one-line ``ValueError`` naming it."""
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise naming(ValueError(f'{{device}} {device!r}: not a device name ({e})'),
                     'device') from None
    why = None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            why = (
                f'{{device}} {device}: no CUDA GPU is available here (torch {torch.__version__}); '
                "use {device} 'cpu'")
        elif dev.index is not None and dev.index >= torch.cuda.device_count():
            why = f'{{device}} {device}: only {torch.cuda.device_count()} CUDA device(s)'
    elif dev.type != 'cpu':
        why = f'{{device}} {device}: use cpu, cuda or cuda:N'
    if why:
        raise naming(ValueError(why), 'device')
    return device


#: Slices per pass of the test pipeline in volumetric mode (OpenCV 5 takes at most 128 channels).
_CHANNELS_PER_PASS = 128


def _skip_masks_below(cfg: Config, score_thr: float) -> None:
    """Raise the second stage's ``score_thr`` (a low one keeps boxes for the FROC curve) to just
    under the detector's, so no mask is made for a box that is dropped anyway: the same kept
    detections (NMS lets a box suppress only lower ones; MMDetection keeps scores strictly
    above its threshold, hence the margin), less time in the mask head."""
    rcnn = cfg.model.get('test_cfg', {}).get('rcnn')
    if rcnn is not None and rcnn.get('score_thr', 0.0) < score_thr - 1e-6:
        rcnn['score_thr'] = score_thr - 1e-6


def _loading_step(pipeline) -> dict:
    for step in pipeline:
        if step.get('type') == 'LoadDeepLesionSlices':
            return step
    raise ValueError('the config\'s test pipeline has no LoadDeepLesionSlices step, so its '
                     'slice count and interval are unknown')


class LesionDetector:
    """A detector config and checkpoint, ready for CT volumes.

    Args:
        config: config path, :class:`~mmengine.config.Config`, or None: the config the checkpoint
            carries (MMEngine records it; :func:`~acsdet.engine.architecture.config_from_checkpoint`
            refuses one that carries none).
        checkpoint: checkpoint path (loaded strictly: every key of the model).
        device: 'cpu', 'cuda' or 'cuda:N'.
        score_thr: keep detections with at least this score.
        batch_size: key slices per forward pass (per-slice mode) or per pass of the neck and
            heads (volumetric mode).
        grouping: how detections become 3D lesions (:class:`~acsdet.inference.GroupingRule`:
            one-to-one links, gaps bridged, depth bounded by size).
        volumetric: run the backbone once over the whole CT (:meth:`predict_volume`) instead of
            once per key slice's stack (:meth:`predict_slices`); None: as the checkpoint says
            (:func:`~acsdet.engine.architecture.default_volumetric`: volumetric for a model
            trained with ``train_context_slices``, per slice otherwise).
        depth_chunk: volumetric mode: key slices per step of the 3D pass (memory grows with
            it; see :meth:`~acsdet.models.backbones.TruncatedDenseNet.forward_volume`).
        precision: 'fp32' or 'bf16' (:mod:`acsdet.inference.precision`: bfloat16 autocast of
            the backbone and neck; float32, with a warning, where the hardware has no native
            bfloat16).
    """

    def __init__(self,
                 config: Union[str, Config, None] = None,
                 checkpoint: Optional[str] = None,
                 device: str = 'cpu',
                 score_thr: float = 0.5,
                 batch_size: int = 4,
                 volumetric: Optional[bool] = None,
                 depth_chunk: int = 32,
                 grouping: GroupingRule = GroupingRule(),
                 precision: str = 'fp32'):
        from mmengine.runner.checkpoint import _load_checkpoint

        import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
        from mmdet.registry import MODELS
        device = check_device(device)
        if checkpoint is None:
            raise TypeError('LesionDetector needs a checkpoint (checkpoint=...); the config is '
                            'optional: None takes the one the checkpoint carries')
        if not osp.isfile(checkpoint):
            raise naming(
                FileNotFoundError(f'{{checkpoint}} {checkpoint}: no such file'), 'checkpoint')
        loaded = _load_checkpoint(checkpoint, map_location='cpu')
        if config is None:  # the config the checkpoint carries
            cfg = config_from_checkpoint(loaded, checkpoint)
            config_name = f'{checkpoint} (the config it carries)'
        else:
            cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
            config_name = config if isinstance(config, str) else None
        #: where the config came from: 'checkpoint' (its meta), or 'given'
        self.config_source = 'checkpoint' if config is None else 'given'
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        self.cfg = cfg
        if depth_chunk < 1:
            raise naming(
                ValueError(f'{{depth_chunk}} must be >= 1, got {depth_chunk}'), 'depth_chunk')
        if not isinstance(grouping, GroupingRule):
            raise TypeError(f'grouping must be a GroupingRule, got {grouping!r}')
        if volumetric is None:
            volumetric, self.mode_reason = default_volumetric(loaded, cfg.model)
        else:
            self.mode_reason = 'asked for'
        self.precision = resolve_precision(precision, device)
        _skip_masks_below(cfg, score_thr)
        test_pipeline = innermost_dataset(cfg.test_dataloader).pipeline
        load = _loading_step(test_pipeline)
        self.model = MODELS.build(cfg.model)
        if volumetric:  # before any weights are loaded
            if not hasattr(self.model.backbone, 'forward_volume'):
                raise ValueError(f'volumetric inference needs a backbone with forward_volume '
                                 f'(TruncatedDenseNet), not {type(self.model.backbone).__name__}')
            self.model.backbone.depth_radius()  # 'a3d' has none: refused here, before any CT
            rule = load.get('fraction_rule', 'own')
            if rule != 'own':
                raise ValueError("volumetric inference resamples the volume once on one grid: "
                                 f"it cannot use fraction_rule={rule!r} (the references' "
                                 'per-stack weights); run this model per slice')
        check_architecture(loaded, cfg.model, checkpoint, config_name)
        load_state_strictly(self.model, loaded, checkpoint, config_name)
        self.provenance = Provenance(
            config=config_name or (cfg.filename or ''),
            checkpoint=checkpoint,
            checkpoint_sha256=file_sha256(checkpoint))
        self.model.to(device).eval()
        use_separable_roi_align(self.model)  # mmcv's result, faster on CPU (ops/roi_align.py)
        use_topk_proposals(self.model)  # the RPN's best anchors without sorting all of them
        run_layers_in(self.model, self.precision, device)
        self.device = device
        self.score_thr, self.batch_size = score_thr, batch_size
        self.grouping = grouping
        self.volumetric, self.depth_chunk = volumetric, depth_chunk
        self.num_slices = int(load.get('num_slices', NUM_SLICES))
        self.target_interval = float(load.get('target_interval', TARGET_INTERVAL_MM))
        backbone_d = getattr(self.model.backbone, 'num_slices', self.num_slices)
        if backbone_d != self.num_slices:
            raise ValueError(f'{config if isinstance(config, str) else "the config"}: the test '
                             f'pipeline loads {self.num_slices} slices, the backbone takes '
                             f'{backbone_d}: set the same num_slices in both')
        self.keep_thick_slices = bool(load.get('keep_thick_slices', False))
        steps = [
            dict(
                type='LoadVolumeSlices',
                num_slices=self.num_slices,
                target_interval=self.target_interval,
                keep_thick_slices=self.keep_thick_slices,
                fraction_rule=load.get('fraction_rule', 'own'))
        ]
        for step in test_pipeline:
            if step.get('type') in ('LoadDeepLesionSlices', 'LoadAnnotations'):
                continue
            step = copy.deepcopy(step)
            if step.get('type') == 'PackDetInputs':
                step['meta_keys'] = LoadVolumeSlices.META_KEYS
            steps.append(step)
        self.pipeline = Compose(steps)
        self._after_loading = Compose(steps[1:])

    @torch.no_grad()
    def predict_slices(self, vol: CTVolume, indices: Sequence[int], progress: bool = False):
        """``(predictions, seconds)``: per-slice predictions ``[(slice index, boxes (n, 4),
        scores (n,), masks)]`` of detections scoring at least ``score_thr`` (``masks``: each
        detection's inside its box, :func:`~.restore.masks_in_boxes`), and the
        seconds spent preparing inputs (``prepare``) and in the model (``model``)."""
        bar = tqdm(
            total=len(indices), desc=f'{vol.name}: slices', unit='slice', disable=not progress)
        out = []
        t_prep = t_model = 0.0
        for start in range(0, len(indices), self.batch_size):
            t0 = time.perf_counter()
            batch = []
            for k in indices[start:start + self.batch_size]:
                batch.append(
                    self.pipeline(
                        dict(
                            volume=vol.hu,
                            z_positions=vol.z_positions,
                            key_index=int(k),
                            img_id=int(k),
                            img_path=f'{vol.name}/{int(k)}',
                            spacing=list(vol.pixel_spacing_xy),
                            slice_interval=vol.spacing[0])))
            data = pseudo_collate(batch)
            t1 = time.perf_counter()
            samples = self.model.test_step(data)
            if str(self.device).startswith('cuda'):
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            t_prep += t1 - t0
            t_model += t2 - t1
            for sample in samples:
                out.append((int(sample.metainfo['key_index']), *self._kept(sample.pred_instances)))
            bar.update(len(batch))
        bar.close()
        return out, dict(prepare=t_prep, model=t_model)

    @torch.no_grad()
    def predict_volume(self, vol: CTVolume, indices: Sequence[int], progress: bool = False):
        """:meth:`predict_slices` by one 3D pass: ``(predictions, seconds, inference)``.

        The volume is resampled once onto the config's slice grid
        (:func:`~acsdet.datasets.slices.depth_grid`: ``target_interval``, or a thick series'
        own slices with ``keep_thick_slices``); the backbone runs over it in depth chunks
        (:meth:`~acsdet.models.backbones.TruncatedDenseNet.forward_volume`); the neck and heads
        run on the grid slice nearest to each stored slice in ``indices`` (the key slices), and
        each stored slice takes its key slice's detections. ``inference`` says which grid
        position each stored slice's detections come from.
        """
        from ..datasets.slices import depth_grid, resample_on_grid
        t0 = time.perf_counter()
        d = self.num_slices
        grid = depth_grid(vol.z_positions, np.asarray(indices), d, self.target_interval,
                          self.keep_thick_slices)
        backbone = self.model.backbone
        r = backbone.depth_radius()
        lo = max(0, int(grid.keys.min()) - r)
        hi = min(len(grid.plan), int(grid.keys.max()) + d + r)
        stack = resample_on_grid(vol.hu, grid, lo, hi)
        inputs, sample = self._volume_inputs(vol, stack)
        del stack  # the model's input holds it now
        if self.precision == 'bf16':  # as the stem casts it under autocast: the same, half held
            inputs = inputs.to(torch.bfloat16)
        t1 = time.perf_counter()
        thickness = vol.spacing[0] if getattr(backbone, '_takes_thickness', False) else None
        bar = tqdm(
            total=len(grid.keys),
            desc=f'{vol.name}: key slices',
            unit='slice',
            disable=not progress)
        per_key = []
        # the heads run on each depth step as it is made: memory bounded by the chunk
        # a generator: each next() computes one depth step, under the precision (not the heads)
        steps = backbone.forward_volume_steps(inputs, thickness, self.depth_chunk, grid.keys - lo)
        while True:
            try:
                with autocast_to(self.precision, self.device):
                    step = next(steps, None)
            except (MemoryError, torch.OutOfMemoryError, RuntimeError) as e:
                if isinstance(e, RuntimeError) and 'memory' not in str(e).lower():
                    raise
                raise naming(
                    MemoryError(f'{vol.source}: the 3D pass in steps of {self.depth_chunk} key '
                                f'slices of {tuple(inputs.shape[-2:])} px does not fit in '
                                f'memory: lower {{depth_chunk}} (now {self.depth_chunk}) or run '
                                'per slice'), 'depth_chunk') from None
            if step is None:
                break
            feats = step[1]
            for start in range(0, feats[0].shape[0], self.batch_size):
                part = tuple(f[start:start + self.batch_size] for f in feats)
                samples = [copy.deepcopy(sample) for _ in range(part[0].shape[0])]
                # MMDetection's own predict (neck, RPN, RoI heads, rescaling), its backbone call
                # answered by the 3D pass's features
                for pred in self.model.predict(BackboneOutput(part), samples, rescale=True):
                    per_key.append(self._kept(pred.pred_instances))
                bar.update(part[0].shape[0])
            del feats, step
        bar.close()
        if str(self.device).startswith('cuda'):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        preds = [(int(s), *per_key[k]) for s, k in zip(grid.stored, grid.stored_key)]
        inference = dict(
            mode='volumetric',
            grid_step_mm=round(grid.step_mm, 4),
            key_slices=len(grid.keys),
            key_position_mm={
                int(s): round(float(grid.keys[k] * grid.step_mm), 3)
                for s, k in zip(grid.stored, grid.stored_key)
            })
        return preds, dict(prepare=t1 - t0, model=t2 - t1), inference

    def _kept(self, pred) -> tuple:
        """``(boxes, scores, masks)`` of the detections scoring at least ``score_thr``, each
        mask inside its box (:func:`~.restore.masks_in_boxes`) or None."""
        keep = pred.scores >= self.score_thr
        boxes = pred.bboxes[keep].cpu().numpy()
        masks = masks_in_boxes(boxes, pred.masks[keep].cpu()) if 'masks' in pred else None
        return boxes, pred.scores[keep].cpu().numpy(), masks

    def _volume_inputs(self, vol: CTVolume, stack: np.ndarray):
        """The model's input ``(1, L, H', W')`` for a grid stack ``(L, H, W)`` HU (the test
        pipeline after loading, then the data preprocessor, as every key slice's stack goes
        through them) and the data sample every key slice shares."""
        parts, sample = [], None
        for g in range(0, len(stack), _CHANNELS_PER_PASS):  # OpenCV's channel limit
            packed = self._after_loading(
                put_stack(
                    dict(
                        img_id=0,
                        img_path=f'{vol.name}/volume',
                        key_index=0,
                        slice_interval=vol.spacing[0]), stack[g:g + _CHANNELS_PER_PASS]))
            parts.append(packed['inputs'])
            if sample is None:
                sample = packed['data_samples']
        data = self.model.data_preprocessor(
            dict(inputs=[torch.cat(parts)], data_samples=[sample]), False)
        return data['inputs'], data['data_samples'][0]

    def settings(self) -> dict:
        """What, besides the input and the reading options, decides this detector's results: the
        config (SHA-256 of its resolved content), the checkpoint's SHA-256, the score threshold,
        the mode, the precision and the grouping rule (what ``--skip-done`` compares)."""
        config = json.dumps(self.cfg.to_dict(), sort_keys=True, default=repr)
        return dict(
            config_sha256=hashlib.sha256(config.encode()).hexdigest(),
            checkpoint_sha256=self.provenance.checkpoint_sha256,
            score_thr=self.score_thr,
            mode='volumetric' if self.volumetric else 'per-slice',
            precision=self.precision,
            grouping=dataclasses.asdict(self.grouping))

    def __call__(self,
                 volume_or_path: Union[str, CTVolume],
                 slices: Optional[Tuple[int, int]] = None,
                 progress: bool = False,
                 **read_kwargs) -> DetectionResult:
        """Detect lesions in a CT.

        Args:
            volume_or_path: a :class:`CTVolume`, or anything :func:`read_ct` reads.
            slices: ``(start, end)`` axial slice indices of the volume (DeepLesion's order, head
                to feet), end exclusive (default: all); outside the volume a ``ValueError``.
            progress: show a progress bar.
            **read_kwargs: :func:`read_ct`'s options (``series``, ``spacing``, ...).

        Returns:
            The frozen :class:`DetectionResult`, with its provenance, timings and how the
            detections were made (``inference``).
        """
        t0 = time.perf_counter()
        vol = volume_or_path if isinstance(volume_or_path, CTVolume) else read_ct(
            volume_or_path, **read_kwargs)
        t_read = time.perf_counter()
        n = vol.hu.shape[0]
        start, end = slices if slices is not None else (0, n)
        end = n if end is None else end
        if not 0 <= start < end <= n:
            raise ValueError(f'{vol.source}: slices {start}:{end} are outside the volume\'s '
                             f'{n} slices (0:{n}); START:END with 0 <= START < END <= {n}')
        if self.volumetric:
            preds, timing, inference = self.predict_volume(vol, list(range(start, end)), progress)
        else:
            preds, timing = self.predict_slices(vol, list(range(start, end)), progress)
            inference = dict(mode='per-slice')
        t_model = time.perf_counter()
        result = restore_lesions(vol, preds, (start, end), self.score_thr, self.grouping,
                                 self.provenance)
        t_end = time.perf_counter()
        seconds = dict(
            read=t_read - t0,
            detect=t_model - t_read,
            **timing,
            group=t_end - t_model,
            total=t_end - t0)
        return dataclasses.replace(result, inference=inference, seconds=seconds)
