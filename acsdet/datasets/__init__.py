"""DeepLesion: annotation parser, COCO converter, MMDetection dataset and pipeline."""
from . import transforms  # noqa: F401  (registers the pipeline transforms)
from .deeplesion import DeepLesionDataset
from .slices import SliceReader, load_slice_stack

__all__ = ['DeepLesionDataset', 'SliceReader', 'load_slice_stack']
