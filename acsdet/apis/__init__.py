"""Applying a trained model to patients' CTs: predict (:mod:`.lesion_detector`), restore 3D
lesions in the input's geometry (:mod:`.restore`), write (:mod:`.report`)."""
from .lesion_detector import LesionDetector
from .lesion_record import DetectionResult, LesionFinding
from .lesions import GroupingRule, Lesion, SliceDetection, box_iou, group_detections, recist
from .report import write_case
from .restore import restore_lesions

__all__ = [
    'DetectionResult', 'GroupingRule', 'LesionDetector', 'LesionFinding', 'Lesion',
    'SliceDetection', 'box_iou', 'group_detections', 'recist', 'restore_lesions', 'write_case'
]
