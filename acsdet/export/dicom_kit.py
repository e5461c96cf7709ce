"""What acsdet's derived DICOM objects (SEG, SR) share: their series numbers, the identity of a
new object, the source CT they derive from, and the algorithm that made them."""
import os.path as osp

from ..utils.errors import naming

#: The series numbers of acsdet's derived series (SEG, SR), high to stay clear of a scanner's.
SEG_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902


class DicomOutputError(ValueError):
    """A DICOM output that cannot be made for this input; the message says why."""

    @classmethod
    def not_dicom(cls, source: str) -> 'DicomOutputError':
        """The error for DICOM outputs asked of the non-DICOM input ``source``."""
        return naming(
            cls(f'{source}: DICOM SEG / SR outputs reference the source CT\'s DICOM instances, '
                "and this input is not DICOM: use {outputs} 'json' 'nifti' (lesions.nii.gz in "
                "the input's geometry)"), 'outputs')


def dicom_source(result):
    """The :class:`~acsdet.io.dicom.DicomSource` of a result's volume, or
    :meth:`DicomOutputError.not_dicom`."""
    src = result.volume.dicom
    if src is None:
        raise DicomOutputError.not_dicom(result.volume.source)
    return src


def algorithm_parameters(result) -> dict:
    """The config and checkpoint file names of a result's provenance (those known)."""
    p = result.provenance
    known = (('config', p.config), ('checkpoint', p.checkpoint))
    return {k: osp.basename(v) for k, v in known if v}


def new_instance(series_number: int, description: str) -> dict:
    """The identity of a new derived object (keyword arguments of highdicom's SOP classes):
    new series and SOP instance UIDs every run, instance 1, manufacturer acsdet."""
    from pydicom.uid import generate_uid
    return dict(
        series_instance_uid=generate_uid(),
        series_number=series_number,
        series_description=description,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer='acsdet')
