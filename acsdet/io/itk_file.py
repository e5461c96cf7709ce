"""Single-file volumes read by ITK: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``) and
MetaImage (``.mha``, ``.mhd``). NIfTI files are checked for truncation and a zero voxel size
first (:mod:`acsdet.io.nifti`), which ITK lets through.
"""
import os.path as osp

from .ct_volume import CTReadError, CTVolume, from_image, sitk
from .nifti import check_nifti
from .readers import CTReader, case_name, file_extension, register_ct_reader

#: The single-file volume formats by extension (read by ITK).
_FORMATS = {
    '.nii': 'NIfTI',
    '.nii.gz': 'NIfTI',
    '.nrrd': 'NRRD',
    '.nhdr': 'NRRD',
    '.mha': 'MetaImage',
    '.mhd': 'MetaImage'
}
NIFTI_LIKE = tuple(_FORMATS)


def _read_file(path: str) -> CTVolume:
    ext = file_extension(path)
    if ext in ('.nii', '.nii.gz'):
        check_nifti(path)
    try:
        img = sitk().ReadImage(path)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
        why = lines[-1] if lines else 'unknown error'
        if 'No such file or directory' in why or 'Unable to determine ImageIO' in why:
            why = (f'not a readable {_FORMATS[ext]} file: its header or data is damaged or '
                   'incomplete' +
                   (', or its data file is missing' if ext in ('.mhd', '.nhdr') else ''))
        raise CTReadError(f'{path}: unreadable ({why[:200]})') from None
    return from_image(img, f'{path}', case_name(path))


@register_ct_reader
class ITKFileReader(CTReader):
    """A NIfTI, NRRD or MetaImage file."""
    name = 'itk-file'
    description = 'a NIfTI / NRRD / MetaImage file'
    extensions = NIFTI_LIKE

    def accepts(self, path: str) -> bool:
        return not osp.isdir(path) and file_extension(path) in _FORMATS

    def read(self, path: str) -> CTVolume:
        return _read_file(path)
