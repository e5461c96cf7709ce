"""Applying a trained model to a patient's CT: predict (:mod:`.detector`), group per-slice
detections into 3D lesions (:mod:`.grouping`), measure them (:mod:`.recist`), restore them in the
input's geometry (:mod:`.restore`), as immutable records (:mod:`.results`). No file is written
here: :mod:`acsdet.export` writes results."""
from .detector import LesionDetector
from .grouping import GroupingRule, Lesion, SliceDetection, box_iou, group_detections
from .recist import recist
from .restore import restore_lesions
from .results import RESULT_VERSION, DetectionResult, LesionFinding, Provenance

__all__ = [
    'DetectionResult', 'GroupingRule', 'Lesion', 'LesionDetector', 'LesionFinding', 'Provenance',
    'RESULT_VERSION', 'SliceDetection', 'box_iou', 'group_detections', 'recist', 'restore_lesions'
]
