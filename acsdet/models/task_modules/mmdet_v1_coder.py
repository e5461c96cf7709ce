"""MMDetection 1.x box decoding, exactly: for models trained with mmdet 1.0 (the M3DV/AlignShift
DeepLesion checkpoints).

mmdet 1.0rc1's ``delta2bbox`` takes widths as ``x2 - x1 + 1`` and puts the corners at
``centre -+ w / 2 +- 0.5``. mmdet 3's ``LegacyDeltaXYWHBBoxCoder`` keeps the ``+ 1`` but drops the
``+- 0.5`` on purpose (its comment: it scores better on COCO), so a box it decodes is 1 px wider
and higher than the one the model was trained to give. This coder decodes as 1.x did; encoding
(training targets) is the legacy ``bbox2delta``, which is the same in both.
"""
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from mmdet.models.task_modules.coders import LegacyDeltaXYWHBBoxCoder
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import HorizontalBoxes, get_box_tensor


def mmdet_v1_delta2bbox(rois: Tensor,
                        deltas: Tensor,
                        means: Sequence[float] = (0., 0., 0., 0.),
                        stds: Sequence[float] = (1., 1., 1., 1.),
                        max_shape: Optional[Sequence[int]] = None,
                        wh_ratio_clip: float = 16 / 1000) -> Tensor:
    """Boxes ``(N, 4k)`` from ``rois`` ``(N, 4)`` and ``deltas`` ``(N, 4k)``, as mmdet 1.0rc1's
    ``delta2bbox``; ``max_shape`` ``(h, w)`` clamps the corners to ``[0, w - 1] x [0, h - 1]``."""
    means = deltas.new_tensor(means).repeat(1, deltas.size(1) // 4)
    stds = deltas.new_tensor(stds).repeat(1, deltas.size(1) // 4)
    d = deltas * stds + means
    dx, dy, dw, dh = d[:, 0::4], d[:, 1::4], d[:, 2::4], d[:, 3::4]
    max_ratio = float(np.abs(np.log(wh_ratio_clip)))
    dw = dw.clamp(min=-max_ratio, max=max_ratio)
    dh = dh.clamp(min=-max_ratio, max=max_ratio)
    px = ((rois[:, 0] + rois[:, 2]) * 0.5).unsqueeze(1).expand_as(dx)
    py = ((rois[:, 1] + rois[:, 3]) * 0.5).unsqueeze(1).expand_as(dy)
    pw = (rois[:, 2] - rois[:, 0] + 1.0).unsqueeze(1).expand_as(dw)
    ph = (rois[:, 3] - rois[:, 1] + 1.0).unsqueeze(1).expand_as(dh)
    gw, gh = pw * dw.exp(), ph * dh.exp()
    gx, gy = px + pw * dx, py + ph * dy
    x1, y1 = gx - gw * 0.5 + 0.5, gy - gh * 0.5 + 0.5
    x2, y2 = gx + gw * 0.5 - 0.5, gy + gh * 0.5 - 0.5
    if max_shape is not None:
        h, w = int(max_shape[0]), int(max_shape[1])
        x1, x2 = x1.clamp(min=0, max=w - 1), x2.clamp(min=0, max=w - 1)
        y1, y2 = y1.clamp(min=0, max=h - 1), y2.clamp(min=0, max=h - 1)
    return torch.stack([x1, y1, x2, y2], dim=-1).view_as(deltas)


@TASK_UTILS.register_module()
class MMDetV1DeltaXYWHBBoxCoder(LegacyDeltaXYWHBBoxCoder):
    """``LegacyDeltaXYWHBBoxCoder`` whose ``decode`` is mmdet 1.x's (:func:`mmdet_v1_delta2bbox`,
    with the ``+- 0.5``). One ``max_shape`` for the whole batch (as the heads pass it)."""

    def decode(self,
               bboxes,
               pred_bboxes: Tensor,
               max_shape: Optional[Sequence[int]] = None,
               wh_ratio_clip: Optional[float] = 16 / 1000):
        bboxes = get_box_tensor(bboxes)
        assert pred_bboxes.size(0) == bboxes.size(0)
        if max_shape is not None and isinstance(max_shape[0], (list, tuple, Tensor)):
            raise ValueError('MMDetV1DeltaXYWHBBoxCoder takes one max_shape (h, w)')
        out = mmdet_v1_delta2bbox(bboxes, pred_bboxes, self.means, self.stds, max_shape,
                                  wh_ratio_clip)
        if self.use_box_type:
            out = HorizontalBoxes(out)
        return out
