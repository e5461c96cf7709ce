"""Reading patient CT volumes (DICOM, NIfTI, NRRD, MetaImage, DeepLesion PNG series)."""
from .ct_volume import CTReadError, CTVolume, read_ct, volume_to_image

__all__ = ['CTReadError', 'CTVolume', 'read_ct', 'volume_to_image']
