"""RoIAlign as MMDetection 1.x computed it, for models trained with mmdet 1.0 (the M3DV/AlignShift
DeepLesion checkpoints).

mmdet 1.0rc1's RoIAlign kernel samples a RoI ``(x1, y1, x2, y2)`` over ``[x1 s, (x2 + 1) s]``
(``s`` = 1 / stride; inclusive pixel corners) with no half-pixel offset. mmcv 2's
``RoIAlign(aligned=False)`` samples ``[x1 s, x2 s]``, so adding 1 to ``x2`` and ``y2`` first gives
the 1.x sampling points. One difference remains: mmcv forces a RoI narrower than one feature
pixel (``(x2 - x1 + 1) s < 1``, under 4 px at stride 4) to a width of one pixel, where 1.x kept
its width. The M3DV configs' RoIs come from anchors of 16 px and more and rarely get that small.
"""
from typing import Optional, Tuple

from torch import Tensor

from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.registry import MODELS


@MODELS.register_module()
class MMDetV1RoIExtractor(SingleRoIExtractor):
    """``SingleRoIExtractor`` on RoIs in mmdet 1.x's inclusive convention: ``rois`` ``(n, 5)``
    ``(batch index, x1, y1, x2, y2)`` get ``+1`` on ``x2``, ``y2`` before the RoI layers (use
    them with ``RoIAlign(aligned=False)``); output ``(n, C, k, k)``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if any(getattr(layer, 'aligned', False) for layer in self.roi_layers):
            raise ValueError('MMDetV1RoIExtractor reproduces mmdet 1.x RoIAlign: use '
                             'roi_layer=dict(type="RoIAlign", aligned=False)')

    def forward(self,
                feats: Tuple[Tensor],
                rois: Tensor,
                roi_scale_factor: Optional[float] = None) -> Tensor:
        rois = rois.clone()
        rois[:, 3:5] += 1
        return super().forward(feats, rois, roi_scale_factor)
