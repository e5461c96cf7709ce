"""Reading a patient's CT: DICOM series, enhanced CT, NIfTI / NRRD / MetaImage files, DeepLesion
PNG series.

:func:`read_ct` returns a :class:`~acsdet.io.ct_volume.CTVolume`: HU voxels ``(Z, Y, X)`` as axial
slices in DeepLesion's order (index axes towards the patient's left, posterior and feet, see
:mod:`acsdet.io.ct_volume`), whatever the file's storage orientation. SimpleITK does the reading
(GDCM for DICOM) and the reorientation (``DICOMOrient``); acsdet keeps the map back to the file's
own voxel indices and to physical LPS millimetres, so results can be reported in both and label
maps written in the input's exact geometry. Each format is a registered reader
(:mod:`acsdet.io.readers`): :mod:`~acsdet.io.png_series`, :mod:`~acsdet.io.dicom` (series
folders, enhanced CT), :mod:`~acsdet.io.itk_file` (NIfTI, NRRD, MetaImage).
"""
import os.path as osp
from typing import Optional

from . import dicom, itk_file, png_series  # noqa: F401  (register the built-in readers)
from .ct_volume import ORIENTATION, CTReadError, CTVolume, input_key, volume_to_image
from .readers import CT_READERS, case_name, get_reader, readers

__all__ = [
    'CTReadError', 'CTVolume', 'ORIENTATION', 'case_name', 'input_key', 'read_ct', 'volume_to_image'
]


def read_ct(path: str, reader: Optional[str] = None, **options) -> CTVolume:
    """Read a CT from a DICOM folder or enhanced-CT file, a NIfTI / NRRD / MetaImage file or a
    DeepLesion PNG series folder, or any format a registered reader takes.

    Args:
        path: the file or folder.
        reader: the registered reader's name (default: the first whose ``accepts`` takes
            ``path``).
        **options: None means not given: ``series`` (DICOM folder: its SeriesInstanceUID),
            ``spacing`` and ``slice_interval`` (mm; PNG series, or looked up in ``dl_info``, a
            ``DL_info.csv``); each reader gets only the ones it takes; one no reader takes is a
            ``TypeError``.

    Returns:
        The :class:`CTVolume` (DeepLesion's slice order, validated).

    Raises :class:`CTReadError` (a ``ValueError``) with a one-line message naming the input.
    """
    known = {o for r in CT_READERS.values() for o in r.options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f'read_ct: no CT reader takes the option(s) {unknown}; the readers take '
                        f'{sorted(known)}')
    if not osp.exists(path):
        raise CTReadError(f'{path}: no such file or folder')
    chosen = get_reader(reader) if reader is not None else next(
        (r for r in readers() if r.accepts(path)), None)
    if chosen is None:
        raise CTReadError(f'{path}: unsupported file type (use ' +
                          ', '.join(r.description for r in readers()) + ')')
    vol = chosen.read(path, **{
        k: v
        for k, v in options.items() if v is not None and k in chosen.options
    })
    vol.input_key = input_key(path, options.get('series'))
    return vol
