import os.path as osp
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # tools/ and data_converters/ are scripts, importable from the root
    sys.path.insert(0, ROOT)

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed_and_scope():
    """Every test starts seeded and in MMDetection's registry scope (a Runner built by an earlier
    test may have left another scope current)."""
    from mmengine.registry import init_default_scope
    torch.manual_seed(0)
    init_default_scope('mmdet')


def det_batch(images, box, label=0):
    """An MMDetection batch: each ``(C, S, S)`` image with one object: ``box`` (x1, y1, x2, y2)
    and its filled mask."""
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    samples = []
    for img in images:
        size = img.shape[-1]
        s = DetDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                scale_factor=(1.0, 1.0),
                pad_shape=(size, size)))
        x1, y1, x2, y2 = (int(v) for v in box)
        mask = np.zeros((1, size, size), np.uint8)
        mask[0, y1:y2, x1:x2] = 1
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([list(map(float, box))]),
            labels=torch.tensor([label]),
            masks=BitmapMasks(mask, size, size))
        samples.append(s)
    return dict(inputs=list(images), data_samples=samples)
