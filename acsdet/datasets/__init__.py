"""DeepLesion at run time: the MMDetection dataset, its COCO reader, multi-slice loading and the
pipeline transforms (offline preparation is in :mod:`acsdet.preparation`)."""
from . import transforms  # noqa: F401  (registers the pipeline transforms)
from .deeplesion import DeepLesionDataset
from .slices import SliceReader, load_slice_stack

__all__ = ['DeepLesionDataset', 'SliceReader', 'load_slice_stack']
