"""Offline data preparation (run once, not at training time): the DeepLesion -> COCO converter and
the GrabCut weak masks, on the format layer :mod:`acsdet.deeplesion` (whose ``DL_info.csv``
parser they use). ``data_converters/`` are their CLIs."""
from .deeplesion_coco import convert_deeplesion
from .weak_masks import weak_mask

__all__ = ['convert_deeplesion', 'weak_mask']
