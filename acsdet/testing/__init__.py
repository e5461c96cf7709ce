"""Helpers for acsdet's tests, benchmarks and demo (as ``mmdet.testing``): MMDetection batches and
the synthetic DeepLesion generator (:mod:`acsdet.testing.synthetic`)."""
import numpy as np
import torch
from mmengine.structures import InstanceData

from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks

from .synthetic import make_synthetic_deeplesion, measure_recist

__all__ = ['det_batch', 'make_synthetic_deeplesion', 'measure_recist']


def det_batch(images, box, label=0):
    """An MMDetection batch: each ``(C, S, S)`` image with one object: ``box`` (x1, y1, x2, y2)
    and its filled mask; the samples' slice interval is 2 mm."""
    samples = []
    for img in images:
        size = img.shape[-1]
        s = DetDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                scale_factor=(1.0, 1.0),
                pad_shape=(size, size),
                slice_interval=2.0))  # the thickness AlignShift's detector hands on
        x1, y1, x2, y2 = (int(v) for v in box)
        mask = np.zeros((1, size, size), np.uint8)
        mask[0, y1:y2, x1:x2] = 1
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([list(map(float, box))]),
            labels=torch.tensor([label]),
            masks=BitmapMasks(mask, size, size))
        samples.append(s)
    return dict(inputs=list(images), data_samples=samples)
