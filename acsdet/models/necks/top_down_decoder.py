"""The 2D top-down decoder of MULAN/AlignShift: one 512-channel stride-4 map (or a pyramid)."""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmdet.registry import MODELS


@MODELS.register_module()
class TopDownDecoder(BaseModule):
    """1x1 laterals to ``out_channels``, then from the coarsest level down: nearest x2
    upsampling and addition. Input: the backbone's maps, finest first; output: the finest
    ``num_outs`` merged maps, finest first (``num_outs=1``: the paper's single stride-4 map).
    """

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024),
                 out_channels: int = 512,
                 num_outs: int = 1,
                 init_cfg=dict(type='Xavier', layer='Conv2d', distribution='uniform')):
        super().__init__(init_cfg=init_cfg)
        if not 1 <= num_outs <= len(in_channels):
            raise ValueError(f'num_outs must be in [1, {len(in_channels)}], got {num_outs}')
        self.num_outs = num_outs
        self.laterals = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        feats: List[torch.Tensor] = [lat(x) for lat, x in zip(self.laterals, inputs)]
        for i in range(len(feats) - 1, 0, -1):
            feats[i - 1] = feats[i - 1] + F.interpolate(
                feats[i], size=feats[i - 1].shape[-2:], mode='nearest')
        return tuple(feats[:self.num_outs])
