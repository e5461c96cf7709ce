"""The public entry points, in one place: detect lesions in a CT (:mod:`acsdet.inference`) and
write them (:mod:`acsdet.export`).

    from acsdet.apis import LesionDetector, write_case
    result = LesionDetector('configs/deeplesion_acs_7slice.py', 'best.pth')('scan.nii.gz')
    write_case(result, 'out', outputs=('nifti', ))
"""
from ..export import OUTPUT_TYPES, write_case
from ..inference import (DetectionResult, GroupingRule, Lesion, LesionDetector, LesionFinding,
                         Provenance, SliceDetection, box_iou, group_detections, recist,
                         restore_lesions)

__all__ = [
    'DetectionResult', 'GroupingRule', 'LesionDetector', 'LesionFinding', 'Lesion', 'OUTPUT_TYPES',
    'Provenance', 'SliceDetection', 'box_iou', 'group_detections', 'recist', 'restore_lesions',
    'write_case'
]
