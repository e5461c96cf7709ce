"""Reading patient CT volumes (DICOM, enhanced CT, NIfTI, NRRD, MetaImage, DeepLesion PNG series)
into :class:`CTVolume` (DeepLesion's slice order, validated)."""
from .ct_volume import case_name, read_ct
from .volume import ORIENTATION, CTReadError, CTVolume, input_key, input_path, volume_to_image

__all__ = [
    'CTReadError', 'CTVolume', 'ORIENTATION', 'case_name', 'input_key', 'input_path', 'read_ct',
    'volume_to_image'
]
