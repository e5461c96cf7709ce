"""Models registered into ``mmdet.registry.MODELS``."""
from .backbones.truncated_densenet import TruncatedDenseNet
from .detectors import ThicknessAwareMaskRCNN
from .losses.mask_dice_loss import MaskDiceLoss
from .necks.top_down_decoder import TopDownDecoder

__all__ = ['TruncatedDenseNet', 'ThicknessAwareMaskRCNN', 'TopDownDecoder', 'MaskDiceLoss']
