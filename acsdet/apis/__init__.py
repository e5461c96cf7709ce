"""Applying a trained model to patients' CTs: detection, 3D lesions, RECIST, reports."""
from .lesion_detector import DetectionResult, LesionDetector
from .lesion_record import LesionFinding
from .lesions import Lesion, SliceDetection, box_iou, group_detections, recist
from .report import write_case

__all__ = [
    'DetectionResult', 'LesionDetector', 'LesionFinding', 'Lesion', 'SliceDetection', 'box_iou',
    'group_detections', 'recist', 'write_case'
]
