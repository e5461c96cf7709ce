"""The DeepLesion format, the layer every other part builds on: the ``DL_info.csv`` schema and
parser (:mod:`.info`), slice PNGs (:mod:`.png`), file naming and image keys (:mod:`.naming`), the
box conventions and their IoU (:mod:`.boxes`), and acsdet's COCO files (:mod:`.coco`). It imports
nothing of acsdet above :mod:`acsdet.utils`."""
from .boxes import (COCO_BOX_FORMAT, coco_to_continuous, continuous_to_inclusive, inclusive_to_coco,
                    inclusive_to_continuous, iou_plus1)
from .coco import coco_fingerprint, complete_interrupted_conversion, read_coco_annotations
from .info import (COLUMNS, LESION_TYPES, SPLITS, LesionRecord, ParseError, group_by_key_slice,
                   read_dl_info, series_geometry)
from .naming import image_key, key_slice_path, key_slice_relpath
from .png import HU_OFFSET, decode_slice, png_shape

__all__ = [
    'COCO_BOX_FORMAT', 'coco_to_continuous', 'continuous_to_inclusive', 'inclusive_to_coco',
    'inclusive_to_continuous', 'iou_plus1', 'coco_fingerprint', 'complete_interrupted_conversion',
    'read_coco_annotations', 'COLUMNS', 'LESION_TYPES', 'SPLITS', 'LesionRecord', 'ParseError',
    'group_by_key_slice', 'read_dl_info', 'series_geometry', 'image_key', 'key_slice_path',
    'key_slice_relpath', 'HU_OFFSET', 'decode_slice', 'png_shape'
]
