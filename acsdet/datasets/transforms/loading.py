"""Load a DeepLesion multi-slice sample and window it: MMDetection pipeline transforms."""
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from mmdet.registry import TRANSFORMS

from ...defaults import NUM_SLICES, TARGET_INTERVAL_MM
from ...utils.hu import WIDE_WINDOW
from ..slices import SliceReader, check_fraction_rule, load_slice_stack, volume_stack


def put_stack(results: dict, stack: np.ndarray) -> dict:
    """A ``(D, H, W)`` slice stack as MMCV's image ``(H, W, D)`` (slices as channels)."""
    img = cv2.merge(list(stack)).reshape(stack.shape[1], stack.shape[2], -1)
    results['img'] = img
    results['img_shape'] = img.shape[:2]
    results['ori_shape'] = img.shape[:2]
    return results


@TRANSFORMS.register_module()
class LoadDeepLesionSlices(BaseTransform):
    """Read ``num_slices`` slices at ``target_interval`` mm around the key slice ``img_path``.

    Needs ``img_path`` (the key slice PNG), ``key_slice`` and ``slice_interval``. Writes ``img``
    as float32 HU ``(H, W, D)`` (slices as channels, MMCV's layout), ``img_shape``, ``ori_shape``.

    Args:
        depth_jitter_mm: if > 0, the stack is moved along depth by U(-j, j) mm (training
            augmentation of the key slice's position).
        cache_size: decoded slices kept in memory per worker process (LRU).
        cache_dir: keep decoded slices on disk here (``.npy``, 0.5 MiB a 512 x 512 slice) so
            that epochs after the first skip PNG decoding, the pipeline's largest cost (see
            :class:`~acsdet.datasets.slices.SliceReader`). None: decode every time.
        keep_thick_slices: series thicker than ``target_interval`` give their neighbouring
            slices as they are instead of slices resampled at ``target_interval`` (the
            AlignShift authors' input; see :func:`~acsdet.datasets.slices.stack_plan`).
        fraction_rule: ``'own'`` (default: each interpolated slice's own weights) or
            ``'first'`` (the M3DV/AlignShift loaders' weights, for their released models;
            :mod:`acsdet.datasets.slices`).
    """

    def __init__(self,
                 num_slices: int = NUM_SLICES,
                 target_interval: float = TARGET_INTERVAL_MM,
                 depth_jitter_mm: float = 0.0,
                 cache_size: int = 64,
                 cache_dir: Optional[str] = None,
                 keep_thick_slices: bool = False,
                 fraction_rule: str = 'own'):
        self.num_slices, self.target_interval = num_slices, target_interval
        self.keep_thick_slices = keep_thick_slices
        self.fraction_rule = check_fraction_rule(fraction_rule)
        self.depth_jitter_mm = depth_jitter_mm
        self.reader = SliceReader(cache_size, cache_dir)

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        offset = 0.0
        if self.depth_jitter_mm > 0:
            offset = float(np.random.uniform(-self.depth_jitter_mm, self.depth_jitter_mm))
        stack = load_slice_stack(
            osp.dirname(path), int(results['key_slice']), results.get('slice_interval'),
            self.num_slices, self.target_interval, offset, self.reader, self.keep_thick_slices,
            self.fraction_rule)
        return put_stack(results, stack)

    def __repr__(self):
        return (f'{type(self).__name__}(num_slices={self.num_slices}, target_interval='
                f'{self.target_interval}, depth_jitter_mm={self.depth_jitter_mm}, '
                f'cache_dir={self.reader.cache_dir!r}, '
                f'keep_thick_slices={self.keep_thick_slices}, '
                f'fraction_rule={self.fraction_rule!r})')


@TRANSFORMS.register_module()
class HUWindowNormalize(BaseTransform):
    """Clip HU to ``window`` and map it linearly onto ``out_range`` (default [0, 1]).

    The reference's scaling is ``window=(-1024, 2050), out_range=(-50, 205)`` (AlignShift maps to
    [0, 255] and subtracts 50).
    """

    def __init__(self,
                 window: Sequence[float] = WIDE_WINDOW,
                 out_range: Sequence[float] = (0.0, 1.0)):
        if window[1] <= window[0]:
            raise ValueError(f'window max must exceed min, got {window}')
        self.window, self.out_range = tuple(window), tuple(out_range)

    def transform(self, results: dict) -> dict:
        lo, hi = self.window
        a, b = self.out_range
        img = np.clip(results['img'], lo, hi, dtype=np.float32)
        img -= lo
        img *= (b - a) / (hi - lo)
        if a:
            img += a
        results['img'] = img
        return results

    def __repr__(self):
        return f'{type(self).__name__}(window={self.window}, out_range={self.out_range})'


@TRANSFORMS.register_module()
class LoadVolumeSlices(BaseTransform):
    """The :class:`LoadDeepLesionSlices` of an in-memory CT volume (patient-CT inference).

    Needs ``volume`` (``(Z, H, W)`` HU), ``z_positions`` (``(Z,)`` mm) and ``key_index``; writes
    ``img`` as float32 HU ``(H, W, D)``, ``img_shape`` and ``ori_shape``. The D slices around the
    key slice are sampled at ``target_interval`` mm exactly as in training
    (:func:`~acsdet.datasets.slices.volume_stack_plan`).
    """
    #: What ``PackDetInputs`` keeps of a volume sample (``slice_interval``: the volume's slice
    #: spacing, AlignShift's thickness); the key slice is ``key_index``.
    META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'key_index',
                 'slice_interval')

    def __init__(self,
                 num_slices: int = NUM_SLICES,
                 target_interval: float = TARGET_INTERVAL_MM,
                 keep_thick_slices: bool = False,
                 fraction_rule: str = 'own'):
        self.num_slices, self.target_interval = num_slices, target_interval
        self.keep_thick_slices = keep_thick_slices
        self.fraction_rule = check_fraction_rule(fraction_rule)

    def transform(self, results: dict) -> dict:
        stack = volume_stack(results['volume'], results['z_positions'], int(results['key_index']),
                             self.num_slices, self.target_interval, self.keep_thick_slices,
                             self.fraction_rule)
        return put_stack(results, stack)

    def __repr__(self):
        return (f'{type(self).__name__}(num_slices={self.num_slices}, '
                f'target_interval={self.target_interval}, '
                f'keep_thick_slices={self.keep_thick_slices}, '
                f'fraction_rule={self.fraction_rule!r})')
