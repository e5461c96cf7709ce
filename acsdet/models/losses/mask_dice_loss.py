"""Dice loss for ``FCNMaskHead`` that selects each RoI's class channel first.

``FCNMaskHead`` calls ``loss_mask(mask_preds (n, C, h, w), mask_targets (n, h, w), labels (n,))``.
MMDetection's ``DiceLoss`` takes that third argument as a per-sample *weight*: with one class
(label 0) every weight is zero and the mask loss is identically zero, silently. This loss takes
the labels as labels.
"""
import torch

from mmdet.models.losses import DiceLoss
from mmdet.registry import MODELS


@MODELS.register_module()
class MaskDiceLoss(DiceLoss):
    """``DiceLoss`` (sigmoid) on ``pred[i, label[i]]``; same arguments as ``DiceLoss``."""

    def forward(self,
                pred: torch.Tensor,
                target: torch.Tensor,
                label: torch.Tensor = None,
                reduction_override=None,
                avg_factor=None) -> torch.Tensor:
        if pred.dim() == 4:
            if label is None:
                raise ValueError('MaskDiceLoss needs the RoI labels for (n, C, h, w) predictions')
            pred = pred[torch.arange(pred.shape[0], device=pred.device), label.long()]
        return super().forward(pred, target.to(pred.dtype), None, reduction_override, avg_factor)
