"""``lesions_sr.dcm``: the lesions of a DICOM CT as a Comprehensive 3D SR holding a TID 1500
Measurement Report (highdicom).

Per lesion, three measurement groups that share its tracking identifier (``lesion <id>``) and
tracking UID (the UID of its SEG segment), each with finding "Lesion" and algorithm acsdet:

- TID 1411 (volumetric ROI): the lesion's segment in ``lesions_seg.dcm``; its volume (mL) and
  detection score (``99ACSDET`` code, no unit);
- TID 1410 (planar ROI) x 2: the RECIST long / short axis as a two-point SCOORD POLYLINE on the key
  slice's CT instance (and frame, for an enhanced CT), and its length (mm).

Why three groups: a TID 1411/1410 group has exactly one region of interest, and TID 1419 forbids
coordinates on the measurements inside it; the tracking UID ties the groups of one lesion, as
viewers (OHIF, 3D Slicer) expect. Values are ``lesions.json``'s; a polyline point is its
``recist_*_axis_px`` point mapped to the instance's pixel grid (column, row), pixel centres at
+0.5 as DICOM counts them. ``recist_*_mm`` includes the pixel the end points stand in (one pixel
longer than the centre-to-centre distance of the polyline, see :func:`acsdet.inference.recist`).
"""
from typing import List, Optional

import numpy as np

from ..utils.errors import naming
from ..version import __version__
from .dicom_kit import (SR_SERIES_NUMBER, DicomOutputError, algorithm_parameters, derivable_sources,
                        dicom_source, new_instance)

#: The detection score's concept (a private coding scheme: DICOM has no code for it).
SCORE_CODE = ('lesion-score', '99ACSDET', 'Lesion detection score')


def check_axial(vol) -> None:
    """Refuse an SR of a series not stored as axial slices (a key slice is then not one of its
    instances, and the RECIST axes cannot be drawn on one): before the model runs, where the
    planner can tell."""
    if vol.to_stored[0][2] != 2:
        raise naming(
            DicomOutputError(f'{vol.source}: the series is not stored as axial slices, so a key '
                             'slice is not one of its instances and the RECIST axes cannot be '
                             "drawn on one: use {outputs} 'dicom-seg' (and lesions.json)"),
            'outputs')


def axis_on_instance(vol, key_slice: int, axis_px) -> np.ndarray:
    """``(2, 2)`` SCOORD (column, row) points on the stored slice of ``key_slice`` for an axis
    ``[[x, y], [x, y]]`` on the volume's key slice; DICOM pixel centres sit at +0.5."""
    pts = np.array([[x, y, key_slice] for x, y in axis_px], dtype=np.float64)
    stored = vol.to_stored_index(pts)
    return stored[:, :2] + 0.5


def lesion_report(result, seg, tracking_uids: List[str], sources: Optional[list] = None):
    """The ``highdicom.sr.Comprehensive3DSR`` of ``result``'s lesions, referencing ``seg``;
    ``sources`` as for :func:`~acsdet.export.dicom_seg.lesion_segmentation`."""
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid
    vol = result.volume
    src = dicom_source(result)
    check_axial(vol)
    sources = sources if sources is not None else derivable_sources(src.datasets)[0]
    algo = hd.sr.AlgorithmIdentification(
        name='acsdet',
        version=__version__,
        parameters=[f'{k}={v}' for k, v in algorithm_parameters(result).items()] or None)
    mm = codes.UCUM.Millimeter
    score_code = hd.sr.CodedConcept(*SCORE_CODE)
    no_unit = hd.sr.CodedConcept('1', 'UCUM', 'no units')
    ml = hd.sr.CodedConcept('mL', 'UCUM', 'milliliter')
    series = hd.sr.SourceSeriesForSegmentation(str(src.datasets[0].SeriesInstanceUID))
    filled = {  # the segments with frames
        int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        for item in seg.PerFrameFunctionalGroupsSequence
    }
    groups = []
    for n, (les, uid) in enumerate(zip(result.lesions, tracking_uids), 1):
        if n in filled:  # the segment's frames and the source images they come from
            segment = hd.sr.ReferencedSegment.from_segmentation(seg, n)
        else:  # a lesion without voxels (no mask): its empty segment, on the source series
            segment = hd.sr.ReferencedSegment(
                sop_class_uid=seg.SOPClassUID,
                sop_instance_uid=seg.SOPInstanceUID,
                segment_number=n,
                source_series=series)
        tracking = hd.sr.TrackingIdentifier(uid=uid, identifier=f'lesion {les.id}')
        common = dict(
            tracking_identifier=tracking,
            finding_type=codes.SCT.Lesion,
            finding_category=codes.SCT.MorphologicallyAbnormalStructure,
            algorithm_id=algo)
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                referenced_segment=segment,
                measurements=[
                    hd.sr.Measurement(name=codes.SCT.Volume, value=les.volume_ml, unit=ml),
                    hd.sr.Measurement(name=score_code, value=les.score, unit=no_unit),
                ],
                **common))
        _, frame = src.instance(les.key_slice_stored)  # the copy of that instance's header
        ds = sources[0 if frame else les.key_slice_stored]
        image = hd.sr.SourceImageForRegion.from_source_image(
            ds, referenced_frame_numbers=[frame] if frame else None)
        for name, length, axis in ((codes.SCT.LongAxis, les.recist_long_mm,
                                    les.recist_long_axis_px),
                                   (codes.SCT.ShortAxis, les.recist_short_mm,
                                    les.recist_short_axis_px)):
            if length is None or axis is None:
                continue
            groups.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    referenced_region=hd.sr.ImageRegion(
                        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                        graphic_data=axis_on_instance(vol, les.key_slice, axis),
                        source_image=image),
                    measurements=[hd.sr.Measurement(name=name, value=length, unit=mm)],
                    **common))
    if not groups:
        raise DicomOutputError(f'{vol.source}: no lesion, nothing to report in a DICOM SR')
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name='acsdet', model_name='acsdet lesion detection'))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(sources) + [seg],
        content=report,
        is_complete=True,
        is_final=False,
        is_verified=False,
        **new_instance(SR_SERIES_NUMBER, 'acsdet lesion measurements'))
    # the private coding scheme of the score, declared as PS3.3 C.12.1.1.5 asks
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCORE_CODE[1]
    scheme.CodingSchemeName = 'acsdet lesion detection codes'
    scheme.CodingSchemeResponsibleOrganization = 'acsdet'
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr
