"""Offline data preparation (run once, not at training time): the ``DL_info.csv`` parser, the
DeepLesion -> COCO converter and the GrabCut weak masks. ``data_converters/`` are their CLIs."""
from ..deeplesion.info import LesionRecord, group_by_key_slice, read_dl_info
from .deeplesion_coco import convert_deeplesion
from .weak_masks import weak_mask

__all__ = ['convert_deeplesion', 'LesionRecord', 'group_by_key_slice', 'read_dl_info', 'weak_mask']
