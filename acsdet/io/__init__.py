"""Reading patient CT volumes (DICOM, enhanced CT, NIfTI, NRRD, MetaImage, DeepLesion PNG series)
into :class:`CTVolume` (DeepLesion's slice order, validated): :func:`read_ct`
(:mod:`.reading`) picks a reader from the registry (:mod:`.readers`); :class:`CTVolume` is in
:mod:`.ct_volume`."""
from .ct_volume import (ORIENTATION, CTReadError, CTVolume, StoredGeometry, input_fingerprint,
                        input_key, input_path, volume_to_image)
from .reading import case_name, read_ct

__all__ = [
    'CTReadError', 'CTVolume', 'StoredGeometry', 'ORIENTATION', 'case_name', 'input_fingerprint',
    'input_key', 'input_path', 'read_ct', 'volume_to_image'
]
