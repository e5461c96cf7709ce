"""Models registered into ``mmdet.registry.MODELS``."""
from .backbones.truncated_densenet import TruncatedDenseNet
from .detectors import ThicknessAwareMaskRCNN
from .losses.mask_dice_loss import MaskDiceLoss
from .necks.top_down_decoder import TopDownDecoder
from .roi_extractors import MMDetV1RoIExtractor
from .task_modules import MMDetV1DeltaXYWHBBoxCoder

__all__ = [
    'TruncatedDenseNet', 'ThicknessAwareMaskRCNN', 'TopDownDecoder', 'MaskDiceLoss',
    'MMDetV1RoIExtractor', 'MMDetV1DeltaXYWHBBoxCoder'
]
