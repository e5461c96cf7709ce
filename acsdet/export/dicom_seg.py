"""``lesions_seg.dcm``: the lesions of a DICOM CT as a DICOM Segmentation (highdicom).

One binary segment per lesion (segment ``n`` is ``lesions.json``'s ``n``-th lesion, labelled
``lesion <id>``, coded as SCT "Lesion" in "Morphologically abnormal structure", automatic,
algorithm acsdet with its version, config and checkpoint), its frames the source CT's instances
(classic series) or frames (enhanced CT) that hold it, in the source's frame of reference, with
the voxels of ``lesions.nii.gz``. Patient and study attributes are copied from the source by
highdicom as the Segmentation IOD requires; the series and instance UIDs are new each run.
"""
from typing import List, Optional

import numpy as np

from ..version import __version__
from .dicom_kit import (SEG_SERIES_NUMBER, DicomOutputError, algorithm_parameters,
                        derivable_sources, dicom_source, new_instance)


def stored_label_map(result) -> np.ndarray:
    """The label map ``(frames, rows, columns)`` in the source's own frame order: a classic
    series' stored slices, or every frame of an enhanced CT (its localizer frames empty)."""
    import SimpleITK as sitk
    vol = result.volume
    src = dicom_source(result)
    stored = sitk.GetArrayFromImage(vol.as_input_image(result.label_map))  # (k, rows, cols)
    if src.frames is None:
        return stored
    ds = src.datasets[0]
    full = np.zeros((int(ds.NumberOfFrames), ) + stored.shape[1:], stored.dtype)
    full[np.asarray(src.frames)] = stored
    return full


def lesion_segment_descriptions(result, tracking_uids: List[str]):
    import highdicom as hd
    from pydicom.sr.codedict import codes
    algo = hd.AlgorithmIdentificationSequence(
        name='acsdet',
        family=codes.cid7162.ArtificialIntelligence,
        version=__version__,
        parameters=algorithm_parameters(result) or None)
    return [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=f'lesion {les.id}',
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo,
            tracking_uid=uid,
            tracking_id=f'lesion {les.id}')
        for n, (les, uid) in enumerate(zip(result.lesions, tracking_uids), 1)
    ]


def lesion_segmentation(result, tracking_uids: List[str], sources: Optional[list] = None):
    """The ``highdicom.seg.Segmentation`` of ``result``'s lesions (at least one); ``sources``:
    the source headers to derive from (default: the volume's, made fit to copy by
    :func:`~acsdet.export.dicom_kit.derivable_sources`)."""
    import highdicom as hd
    src = dicom_source(result)
    sources = sources if sources is not None else derivable_sources(src.datasets)[0]
    if not result.lesions:
        raise DicomOutputError(f'{result.volume.source}: no lesion, no segment: a DICOM SEG '
                               'needs at least one')
    labels = stored_label_map(result)
    # lesion id -> segment number (a lesion may own no voxel: no mask, or covered by another)
    segment_of = np.zeros(
        max(int(labels.max()), max(les.id for les in result.lesions)) + 1, np.uint16)
    for n, les in enumerate(result.lesions, 1):
        segment_of[les.id] = n
    pixels = segment_of[labels]
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=lesion_segment_descriptions(result, tracking_uids),
        manufacturer_model_name='acsdet lesion detection',
        software_versions=__version__,
        device_serial_number='0',
        content_label='LESIONS',
        content_description='Lesions detected by acsdet (research use, not a diagnosis)',
        **new_instance(SEG_SERIES_NUMBER, 'acsdet lesions'))
