"""``LesionDetector``: a trained acsdet model applied to a patient's CT volume.

    detector = LesionDetector('configs/deeplesion_acs_7slice.py', 'best.pth', device='cpu')
    result = detector('scan.nii.gz')            # or a DICOM folder, or a CTVolume
    for lesion in result.lesions: print(lesion.recist_long_mm, lesion.center_lps_mm)

Every axial slice (or a range) becomes a key slice with its D neighbours sampled at the config's
slice interval exactly as in training (:func:`~acsdet.datasets.slices.volume_slice_plan`), goes
through the config's test pipeline (its DeepLesion loading step replaced by
:class:`~acsdet.datasets.transforms.LoadVolumeSlices`, its annotation loading dropped) and the
model in batches; detections are grouped into 3D lesions (:mod:`acsdet.apis.lesions`).
"""
import copy
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope

from ..datasets.transforms import LoadVolumeSlices
from ..defaults import NUM_SLICES, TARGET_INTERVAL_MM
from ..engine.architecture import (CheckpointMismatch, check_architecture, checkpoint_state,
                                   state_dict_mismatch)
from ..engine.cli import innermost_dataset
from ..io import CTVolume, read_ct
from .lesion_record import LesionFinding
from .lesions import Lesion, SliceDetection, group_detections, recist

RESULT_VERSION = '1.0'


@dataclass
class DetectionResult:
    """Lesions of one CT and how they were found (see ``lesions.json`` in the README)."""
    volume: CTVolume
    lesions: List[LesionFinding]
    detections: List[dict]
    label_map: np.ndarray  # (Z, Y, X) uint16 in the volume's (LPI-ordered) grid, 0 = background
    slices: Tuple[int, int]
    score_thr: float
    seconds: dict = field(default_factory=dict)


def check_device(device: str) -> str:
    """``device`` if torch can use it here; else a one-line ``ValueError`` naming it."""
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f'--device {device!r}: not a device name ({e})') from None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'--device {device}: no CUDA GPU is available here (torch '
                             f'{torch.__version__}); use --device cpu')
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f'--device {device}: only {torch.cuda.device_count()} CUDA device(s)')
    elif dev.type != 'cpu':
        raise ValueError(f'--device {device}: use cpu, cuda or cuda:N')
    return device


def _load_strictly(model, checkpoint: str, cfg: Config, config_name: Optional[str]) -> None:
    """Load every key of ``model`` from ``checkpoint`` after checking its architecture record;
    a ``CheckpointMismatch`` (a ``ValueError``) with one line naming both otherwise."""
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    check_architecture(ckpt, cfg.model, checkpoint, config_name)
    state = checkpoint_state(ckpt)
    problem = state_dict_mismatch(model.state_dict(), state)
    if problem:
        raise CheckpointMismatch(f'checkpoint {checkpoint} does not fit the model of '
                                 f'{config_name or "the config"}: {problem}')
    model.load_state_dict(state, strict=True)


def _loading_step(pipeline) -> dict:
    for step in pipeline:
        if step.get('type') == 'LoadDeepLesionSlices':
            return step
    raise ValueError('the config\'s test pipeline has no LoadDeepLesionSlices step, so its '
                     'slice count and interval are unknown')


class LesionDetector:
    """A detector config and checkpoint, ready for CT volumes.

    Args:
        config: config path or :class:`~mmengine.config.Config`.
        checkpoint: checkpoint path (loaded strictly: every key of the model).
        device: 'cpu', 'cuda' or 'cuda:N'.
        score_thr: keep detections with at least this score.
        batch_size: key slices per forward pass.
        iou_thr: IoU that links detections on adjacent slices into one lesion.
    """

    def __init__(self,
                 config: Union[str, Config],
                 checkpoint: str,
                 device: str = 'cpu',
                 score_thr: float = 0.5,
                 batch_size: int = 4,
                 iou_thr: float = 0.5):
        import acsdet  # noqa: F401  (registers acsdet's modules)
        from mmdet.registry import MODELS
        device = check_device(device)
        cfg = Config.fromfile(config) if isinstance(config, str) else copy.deepcopy(config)
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        self.cfg = cfg
        self.model = MODELS.build(cfg.model)
        _load_strictly(self.model, checkpoint, cfg, config if isinstance(config, str) else None)
        self.model.to(device).eval()
        self.device = device
        self.score_thr, self.batch_size, self.iou_thr = score_thr, batch_size, iou_thr
        test_pipeline = innermost_dataset(cfg.test_dataloader).pipeline
        load = _loading_step(test_pipeline)
        self.num_slices = int(load.get('num_slices', NUM_SLICES))
        self.target_interval = float(load.get('target_interval', TARGET_INTERVAL_MM))
        backbone_d = getattr(self.model.backbone, 'num_slices', self.num_slices)
        if backbone_d != self.num_slices:
            raise ValueError(f'{config if isinstance(config, str) else "the config"}: the test '
                             f'pipeline loads {self.num_slices} slices, the backbone takes '
                             f'{backbone_d}: set the same num_slices in both')
        steps = [
            dict(
                type='LoadVolumeSlices',
                num_slices=self.num_slices,
                target_interval=self.target_interval,
                keep_thick_slices=bool(load.get('keep_thick_slices', False)))
        ]
        for step in test_pipeline:
            if step.get('type') in ('LoadDeepLesionSlices', 'LoadAnnotations'):
                continue
            step = copy.deepcopy(step)
            if step.get('type') == 'PackDetInputs':
                step['meta_keys'] = LoadVolumeSlices.META_KEYS
            steps.append(step)
        self.pipeline = Compose(steps)

    @torch.no_grad()
    def predict_slices(self, vol: CTVolume, indices: Sequence[int], progress: bool = False):
        """``(predictions, seconds)``: per-slice predictions ``[(slice index, boxes (n, 4),
        scores (n,), masks (n, H, W))]`` of detections scoring at least ``score_thr``, and the
        seconds spent preparing inputs (``prepare``) and in the model (``model``)."""
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(indices), desc=f'{vol.name}: slices', unit='slice')
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
                            spacing=list(vol.pixel_spacing),
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
                pred = sample.pred_instances
                keep = pred.scores >= self.score_thr
                masks = pred.masks[keep].cpu().numpy() if 'masks' in pred else None
                out.append((int(sample.metainfo['key_index']), pred.bboxes[keep].cpu().numpy(),
                            pred.scores[keep].cpu().numpy(), masks))
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()
        return out, dict(prepare=t_prep, model=t_model)

    def __call__(self,
                 volume_or_path: Union[str, CTVolume],
                 slices: Optional[Tuple[int, int]] = None,
                 progress: bool = False,
                 **read_kwargs) -> DetectionResult:
        """Detect lesions in a CT (a :class:`CTVolume` or anything :func:`read_ct` reads).

        ``slices``: ``(start, end)`` axial slice indices of the volume (DeepLesion's order, head
        to feet), end exclusive (default: all); a range outside the volume is a ``ValueError``.
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
        preds, timing = self.predict_slices(vol, list(range(start, end)), progress)
        t_model = time.perf_counter()
        result = self._summarise(vol, preds, (start, end))
        t_end = time.perf_counter()
        result.seconds = dict(
            read=t_read - t0,
            detect=t_model - t_read,
            **timing,
            group=t_end - t_model,
            total=t_end - t0)
        return result

    def _summarise(self, vol: CTVolume, preds, slices) -> DetectionResult:
        dets, per_slice = [], []
        h, w = vol.hu.shape[1:]
        for k, boxes, scores, masks in preds:
            for j, (box, score) in enumerate(zip(boxes, scores)):
                x0, y0 = int(np.floor(max(box[0], 0))), int(np.floor(max(box[1], 0)))
                x1, y1 = int(np.ceil(min(box[2], w))), int(np.ceil(min(box[3], h)))
                crop = masks[j, y0:y1, x0:x1].astype(bool) if masks is not None else None
                dets.append(SliceDetection(k, np.asarray(box, float), float(score), crop, (x0, y0)))
        lesions = group_detections(dets, self.iou_thr)
        label_map = np.zeros(vol.hu.shape, np.uint16)
        records = []
        for i, les in enumerate(lesions, start=1):
            records.append(self._lesion_record(vol, les, i, label_map))
            for d in les.members:
                per_slice.append(
                    dict(
                        lesion=i,
                        slice=d.slice_index,
                        box=[round(float(v), 2) for v in d.box],
                        score=round(d.score, 4)))
        return DetectionResult(vol, records, per_slice, label_map, slices, self.score_thr)

    def _lesion_record(self, vol: CTVolume, les: Lesion, i: int, label_map) -> LesionFinding:
        sx, sy = vol.pixel_spacing
        shape = vol.hu.shape[1:]
        area_px = 0
        for d in les.members:
            m = d.full_mask(shape)
            label_map[d.slice_index][m & (label_map[d.slice_index] == 0)] = i
            area_px += int(m.sum())
        key = les.key
        rec = recist(key.full_mask(shape), (sx, sy))
        x1, y1, z1, x2, y2, z2 = les.box_3d()
        # voxel-centre extents: columns x1 .. x2 - 1 (continuous box edges), slices z1 .. z2
        corners = np.array([[x, y, z] for x in (x1, x2 - 1) for y in (y1, y2 - 1)
                            for z in (z1, z2)])
        stored = vol.to_stored_index(corners)
        lps = vol.to_lps(corners)
        kb = key.box
        centre = np.array([(kb[0] + kb[2] - 1) / 2, (kb[1] + kb[3] - 1) / 2, key.slice_index])
        gaps = np.diff(vol.z_positions)
        slice_mm = float(np.median(gaps)) if len(gaps) else vol.spacing[0]
        return LesionFinding(
            id=i,
            score=round(les.score, 4),
            key_slice=key.slice_index,
            key_slice_stored=int(round(float(vol.to_stored_index(centre)[2]))),
            slices=list(les.slice_range),
            num_slices=les.slice_range[1] - les.slice_range[0] + 1,
            key_box_px=[round(float(v), 2) for v in kb],
            box_voxel=dict(
                x=[round(float(x1), 2), round(float(x2), 2)],
                y=[round(float(y1), 2), round(float(y2), 2)],
                z=[int(z1), int(z2)]),
            box_stored_index=dict(
                min=np.round(stored.min(0), 2).tolist(), max=np.round(stored.max(0), 2).tolist()),
            box_lps_mm=dict(
                min=np.round(lps.min(0), 2).tolist(), max=np.round(lps.max(0), 2).tolist()),
            center_voxel=np.round(centre, 2).tolist(),
            center_stored_index=np.round(vol.to_stored_index(centre), 2).tolist(),
            center_lps_mm=np.round(vol.to_lps(centre), 2).tolist(),
            recist_long_mm=round(rec['long_mm'], 2) if rec else None,
            recist_short_mm=round(rec['short_mm'], 2) if rec else None,
            recist_long_axis_px=np.round(rec['long_axis'], 2).tolist() if rec else None,
            recist_short_axis_px=np.round(rec['short_axis'], 2).tolist() if rec else None,
            volume_ml=round(area_px * sx * sy * slice_mm / 1000.0, 3))
