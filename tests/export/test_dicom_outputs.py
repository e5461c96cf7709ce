"""DICOM SEG and TID 1500 SR outputs of a DICOM CT, read back by highdicom and by dcmqi (an
independent reader) and validated by dciodvfy: the voxels are lesions.nii.gz's, every value and
coordinate is lesions.json's, every reference resolves to the source CT."""
import dataclasses
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from acsdet.apis import Provenance, restore_lesions, write_case
from acsdet.export.dicom_kit import DicomOutputError
from acsdet.io import read_ct
from acsdet.testing.ct_files import (head_to_feet_phantom, lps_image, perfect_predictions,
                                     phantom_lesion_labels, write_dicom_series, write_enhanced_ct)

from ..helpers import CONFIG_DEMO

SPACING = (2.0, 0.8, 0.8)
DCMQI = osp.dirname(sys.executable)  # make setup installs dcmqi's readers beside python


def phantom_result(vol, lesions, which=(0, 1)):
    """The phantom's lesions ``which`` as perfect per-slice detections, restored into lesions
    (scores peak at each lesion's centre slice, its key slice)."""
    labels = phantom_lesion_labels(lesions, vol.hu.shape)
    labels[~np.isin(labels, [j + 1 for j in which])] = 0
    preds = perfect_predictions(
        labels, score=lambda i, k: 0.95 - 0.05 * abs(k - lesions[i - 1][0]) - 0.1 * (i - 1))
    return restore_lesions(vol, preds, (0, vol.hu.shape[0]), 0.5)


@pytest.fixture(scope='module', params=['series', 'enhanced'])
def dicom_case(request, tmp_path_factory):
    """A phantom CT as a classic DICOM series (shuffled files) or an enhanced CT (frames feet
    first), its two lesions detected perfectly, written with every output type."""
    root = tmp_path_factory.mktemp('dicom_out')
    hu, lesions = head_to_feet_phantom(24, 64)
    if request.param == 'series':
        src = str(root / 'ct')
        write_dicom_series(hu, SPACING, src)
        files = sorted(glob.glob(osp.join(src, '*.dcm')))
    else:
        src = write_enhanced_ct(hu, SPACING, str(root / 'ct.dcm'))
        files = [src]
    vol = read_ct(src)
    result = dataclasses.replace(
        phantom_result(vol, lesions), provenance=Provenance(CONFIG_DEMO, 'model.pth'))
    assert len(result.lesions) == 2
    folder = write_case(result, str(root / 'out'), 'case', outputs=('nifti', 'dicom-sr'))
    with open(osp.join(folder, 'lesions.json')) as f:
        js = json.load(f)
    cts = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    return dict(kind=request.param, src=src, folder=folder, json=js, cts=cts, result=result)


def _nifti_labels(folder):
    return sitk.GetArrayFromImage(sitk.ReadImage(osp.join(folder, 'lesions.nii.gz')))


def _stored_order(case):
    """The source frames / instances in lesions.nii.gz's slice order (ascending along the
    slice normal): ``[(sop uid, frame number or None, position (3,))]``."""
    if case['kind'] == 'series':
        items = [(str(d.SOPInstanceUID), None, np.array(d.ImagePositionPatient, float))
                 for d in case['cts']]
    else:
        d = case['cts'][0]
        items = [(str(d.SOPInstanceUID), i + 1,
                  np.array(g.PlanePositionSequence[0].ImagePositionPatient, float))
                 for i, g in enumerate(d.PerFrameFunctionalGroupsSequence)]
    return sorted(items, key=lambda t: t[2][2])


def test_seg_segments_are_the_label_map_and_reference_the_source(dicom_case):
    folder, js = dicom_case['folder'], dicom_case['json']
    seg = hd.seg.segread(osp.join(folder, 'lesions_seg.dcm'))
    entries = js['dicom']['lesions']
    assert seg.number_of_segments == len(js['lesions']) == len(entries) == 2
    for n, entry in enumerate(entries, 1):
        desc = seg.get_segment_description(n)
        assert desc.segment_label == f'lesion {entry["id"]}'
        assert desc.tracking_uid == entry['tracking_uid'] and entry['segment_number'] == n
        assert desc.segmented_property_type.value == '52988006'  # SCT Lesion
        algo = desc.algorithm_identification[0]
        assert algo.AlgorithmName == 'acsdet' and osp.basename(CONFIG_DEMO) in str(
            algo.AlgorithmParameters)
    order = _stored_order(dicom_case)
    uid = order[0][0]
    if dicom_case['kind'] == 'series':
        seg_arr = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[u for u, _, _ in order],
            combine_segments=True,
            assert_missing_frames_are_empty=True)
    else:
        seg_arr = seg.get_pixels_by_source_frame(
            source_sop_instance_uid=uid,
            source_frame_numbers=[f for _, f, _ in order],
            combine_segments=True,
            assert_missing_frames_are_empty=True)
    ids = np.array([0] + [e['id'] for e in entries])
    np.testing.assert_array_equal(ids[seg_arr], _nifti_labels(folder))
    # frames sit where the source slices they reference sit, in the source frame of reference
    ds = pydicom.dcmread(osp.join(folder, 'lesions_seg.dcm'))
    where = {(u, f): p for u, f, p in order}
    for item in ds.PerFrameFunctionalGroupsSequence:
        ref = item.DerivationImageSequence[0].SourceImageSequence[0]
        frame = int(ref.ReferencedFrameNumber) if 'ReferencedFrameNumber' in ref else None
        pos = np.array(item.PlanePositionSequence[0].ImagePositionPatient, float)
        np.testing.assert_allclose(pos, where[(str(ref.ReferencedSOPInstanceUID), frame)])
    src = dicom_case['cts'][0]
    assert ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert (ds.StudyInstanceUID, ds.PatientID) == (src.StudyInstanceUID, src.PatientID)
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.Modality == 'SEG'


def _lps_of_axis_point(js, x, y, key):
    """LPS mm of a point on the key slice from lesions.json's geometry (evenly spaced)."""
    g = js['geometry']
    d = np.array(g['direction']).reshape(3, 3)
    sx, sy, sz = g['spacing_xyz_mm']
    return np.array(g['origin_lps_mm']) + x * sx * d[:, 0] + y * sy * d[:, 1] + key * sz * d[:, 2]


def _lps_of_scoord(case, uid, frame, col, row):
    """LPS mm of an SR pixel coordinate (pixel centres at +0.5) on a source instance / frame."""
    if case['kind'] == 'series':
        d = next(c for c in case['cts'] if c.SOPInstanceUID == uid)
        ipp, iop, ps = d.ImagePositionPatient, d.ImageOrientationPatient, d.PixelSpacing
    else:
        d = case['cts'][0]
        ipp = d.PerFrameFunctionalGroupsSequence[frame -
                                                 1].PlanePositionSequence[0].ImagePositionPatient
        shared = d.SharedFunctionalGroupsSequence[0]
        iop = shared.PlaneOrientationSequence[0].ImageOrientationPatient
        ps = shared.PixelMeasuresSequence[0].PixelSpacing
    iop = np.array(iop, float)
    return (np.array(ipp, float) + (col - 0.5) * float(ps[1]) * iop[:3] +
            (row - 0.5) * float(ps[0]) * iop[3:])


def test_sr_measurements_and_coordinates_are_lesions_json(dicom_case):
    folder, js = dicom_case['folder'], dicom_case['json']
    sr = hd.sr.srread(osp.join(folder, 'lesions_sr.dcm'))
    seg_uid = str(pydicom.dcmread(osp.join(folder, 'lesions_seg.dcm')).SOPInstanceUID)
    assert js['dicom']['seg']['sop_instance_uid'] == seg_uid
    assert js['dicom']['sr']['sop_instance_uid'] == str(sr.SOPInstanceUID)
    volumetric = sr.content.get_volumetric_roi_measurement_groups()
    planar = sr.content.get_planar_roi_measurement_groups()
    assert len(volumetric) == 2 and len(planar) == 4
    ct_uids = {str(c.SOPInstanceUID) for c in dicom_case['cts']}
    for entry, les in zip(js['dicom']['lesions'], js['lesions']):
        uid = entry['tracking_uid']
        (group, ) = [g for g in volumetric if g.tracking_uid == uid]
        assert group.tracking_identifier == f'lesion {les["id"]}'
        values = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
        assert values == {
            'Volume': (les['volume_ml'], 'mL'),
            'Lesion detection score': (les['score'], '1')
        }
        ref = group.referenced_segment
        assert ref.referenced_sop_instance_uid == seg_uid
        assert ref.referenced_segment_numbers == [entry['segment_number']]
        for meaning, mm, axis in (('Long axis', 'recist_long_mm', 'recist_long_axis_px'),
                                  ('Short axis', 'recist_short_mm', 'recist_short_axis_px')):
            (pg, ) = [
                g for g in planar
                if g.tracking_uid == uid and g.get_measurements()[0].name.meaning == meaning
            ]
            (m, ) = pg.get_measurements()
            assert (m.value, m.unit.value) == (les[mm], 'mm')
            region = pg.roi
            assert region.graphic_type.value == 'POLYLINE'
            image = region.ContentSequence[0].ReferencedSOPSequence[0]
            ref_uid = str(image.ReferencedSOPInstanceUID)
            assert ref_uid in ct_uids  # resolves to a source instance
            frame = int(image.ReferencedFrameNumber[0] if isinstance(
                image.ReferencedFrameNumber, pydicom.multival.MultiValue) else image.
                        ReferencedFrameNumber) if 'ReferencedFrameNumber' in image else None
            pts = np.array(region.value).reshape(-1, 2)
            got = [_lps_of_scoord(dicom_case, ref_uid, frame, c, r) for c, r in pts]
            want = [_lps_of_axis_point(js, x, y, les['key_slice']) for x, y in les[axis]]
            np.testing.assert_allclose(got, want, atol=1e-3)
    evidence = {
        str(i.ReferencedSOPInstanceUID)
        for s in sr.CurrentRequestedProcedureEvidenceSequence
        for r in s.ReferencedSeriesSequence
        for i in r.ReferencedSOPSequence
    }
    assert seg_uid in evidence and ct_uids <= evidence
    assert sr.StudyInstanceUID == dicom_case['cts'][0].StudyInstanceUID and sr.Modality == 'SR'
    (scheme, ) = sr.CodingSchemeIdentificationSequence  # the score's private scheme, declared
    assert scheme.CodingSchemeDesignator == '99ACSDET'


@pytest.mark.skipif(
    shutil.which('dciodvfy') is None,
    reason='dciodvfy (Debian dicom3tools) is not installed; .ci/run installs it')
def test_dciodvfy_reports_no_error(dicom_case):
    for name in ('lesions_seg.dcm', 'lesions_sr.dcm'):
        out = subprocess.run(['dciodvfy', osp.join(dicom_case['folder'], name)],
                             capture_output=True,
                             text=True)
        lines = (out.stdout + out.stderr).splitlines()
        assert lines and not [ln for ln in lines if ln.startswith('Error')], (name, lines)


def test_dcmqi_reads_the_same_label_map_and_measurements(dicom_case, tmp_path):
    folder, js = dicom_case['folder'], dicom_case['json']
    out = tmp_path / 'qi'
    out.mkdir()
    subprocess.run([
        osp.join(DCMQI, 'segimage2itkimage'), '--inputDICOM',
        osp.join(folder, 'lesions_seg.dcm'), '--outputDirectory',
        str(out), '--outputType', 'nifti'
    ],
                   check=True,
                   capture_output=True)
    labels = sitk.ReadImage(osp.join(folder, 'lesions.nii.gz'))
    arr = sitk.GetArrayFromImage(labels)
    for entry in js['dicom']['lesions']:
        img = sitk.ReadImage(str(out / f'{entry["segment_number"]}.nii.gz'))
        on = np.argwhere(sitk.GetArrayFromImage(img) > 0)  # (k, j, i)
        idx = [
            labels.TransformPhysicalPointToIndex(
                img.TransformIndexToPhysicalPoint([int(i), int(j), int(k)])) for k, j, i in on
        ]
        assert len(idx) == int((arr == entry['id']).sum()) > 0
        assert all(arr[k, j, i] == entry['id'] for i, j, k in idx)
    subprocess.run([
        osp.join(DCMQI, 'tid1500reader'), '--inputDICOM',
        osp.join(folder, 'lesions_sr.dcm'), '--outputMetadata',
        str(out / 'sr.json')
    ],
                   check=True,
                   capture_output=True)
    with open(out / 'sr.json') as f:
        groups = json.load(f)['Measurements']
    seg_uid = js['dicom']['seg']['sop_instance_uid']
    for entry, les in zip(js['dicom']['lesions'], js['lesions']):
        mine = [g for g in groups if g['TrackingUniqueIdentifier'] == entry['tracking_uid']]
        assert len(mine) == 3
        values = {
            i['quantity']['CodeMeaning']: float(i['value'])
            for g in mine
            for i in g['measurementItems']
        }
        assert values == {
            'Volume': les['volume_ml'],
            'Lesion detection score': les['score'],
            'Long axis': les['recist_long_mm'],
            'Short axis': les['recist_short_mm']
        }
        (vol, ) = [g for g in mine if 'ReferencedSegment' in g]
        assert (vol['ReferencedSegment'],
                vol['segmentationSOPInstanceUID']) == (entry['segment_number'], seg_uid)


def test_each_run_makes_new_series_and_instances(dicom_case, tmp_path):
    folder = write_case(
        dicom_case['result'], str(tmp_path), 'again', outputs=('dicom-seg', 'dicom-sr'))
    for name in ('lesions_seg.dcm', 'lesions_sr.dcm'):
        a = pydicom.dcmread(osp.join(dicom_case['folder'], name), stop_before_pixels=True)
        b = pydicom.dcmread(osp.join(folder, name), stop_before_pixels=True)
        assert a.SeriesInstanceUID != b.SeriesInstanceUID and a.SOPInstanceUID != b.SOPInstanceUID
        assert (a.StudyInstanceUID, a.PatientID, a.PatientName) == (b.StudyInstanceUID, b.PatientID,
                                                                    b.PatientName)
    assert not osp.exists(osp.join(folder, 'lesions.nii.gz'))  # only what was asked


def test_dicom_outputs_need_a_dicom_input_and_a_lesion(tmp_path):
    hu, lesions = head_to_feet_phantom(24, 64)
    sitk.WriteImage(lps_image(hu, SPACING), str(tmp_path / 'scan.nii.gz'))
    result = phantom_result(read_ct(str(tmp_path / 'scan.nii.gz')), lesions)
    with pytest.raises(
            DicomOutputError, match=r'scan\.nii\.gz: DICOM SEG / SR outputs .* not '
            'DICOM'):
        write_case(result, str(tmp_path / 'out'), outputs=('dicom-seg', ))
    assert not osp.exists(tmp_path / 'out' / 'scan')  # refused before anything was written
    write_dicom_series(hu, SPACING, str(tmp_path / 'ct'))
    empty = phantom_result(read_ct(str(tmp_path / 'ct')), lesions, which=())
    folder = write_case(empty, str(tmp_path / 'out'), outputs=('dicom-sr', ))
    with open(osp.join(folder, 'lesions.json')) as f:
        js = json.load(f)
    assert js['lesions'] == [] and 'no DICOM SEG / SR written' in js['dicom']['note']
    assert not [n for n in os.listdir(folder) if n.endswith('.dcm')]


def test_an_sr_needs_a_series_stored_as_axial_slices(tmp_path):
    """A series stored coronally has no instance holding an axial key slice: no RECIST polyline
    can be drawn on one, so the SR is refused (the SEG is not: its frames are the instances)."""
    from acsdet.export.dicom_sr import lesion_report
    from acsdet.io.dicom import DicomSource
    from acsdet.testing.ct_files import ORIENTATIONS, stored_image
    hu, lesions = head_to_feet_phantom(24, 64)
    sitk.WriteImage(
        stored_image(lps_image(hu, SPACING), *ORIENTATIONS['coronal']), str(tmp_path / 'c.nrrd'))
    vol = read_ct(str(tmp_path / 'c.nrrd'))
    vol.dicom = DicomSource([pydicom.Dataset()])  # what a coronal DICOM series would carry
    result = phantom_result(vol, lesions)
    assert vol.to_stored[0][2] != 2 and len(result.lesions) == 2
    with pytest.raises(
            DicomOutputError, match=r'c\.nrrd: the series is not stored as axial '
            'slices'):
        lesion_report(result, None, [])


def test_a_lesion_without_voxels_is_an_empty_segment_without_axes(tmp_path):
    """A detection without a mask (or one covered by an earlier lesion) still makes a lesion: its
    segment is empty and its SR has the volumetric group only (no RECIST axes to draw)."""
    hu, lesions = head_to_feet_phantom(24, 64)
    write_dicom_series(hu, SPACING, str(tmp_path / 'ct'))
    vol = read_ct(str(tmp_path / 'ct'))
    masked = phantom_result(vol, lesions, which=(0, ))
    z, x, y, r = lesions[1]
    box = np.array([[x - r, y - r, x + r, y + r]])
    preds = [(int(z), box, np.array([0.9]), None)]  # a box without a mask
    bare = restore_lesions(vol, preds, (0, len(hu)), 0.5)
    assert bare.lesions[0].recist_long_mm is None and not bare.label_map.any()
    result = masked
    result.lesions.append(dataclasses.replace(bare.lesions[0], id=2))
    folder = write_case(result, str(tmp_path / 'out'), outputs=('nifti', 'dicom-sr'))
    seg = hd.seg.segread(osp.join(folder, 'lesions_seg.dcm'))
    assert seg.number_of_segments == 2
    sr = hd.sr.srread(osp.join(folder, 'lesions_sr.dcm'))
    assert len(sr.content.get_volumetric_roi_measurement_groups()) == 2
    assert len(sr.content.get_planar_roi_measurement_groups()) == 2  # lesion 1's axes only
    if shutil.which('dciodvfy'):
        for name in ('lesions_seg.dcm', 'lesions_sr.dcm'):
            out = subprocess.run(['dciodvfy', osp.join(folder, name)],
                                 capture_output=True,
                                 text=True)
            assert 'Error' not in out.stdout + out.stderr, name


JAPANESE = 'Yamada^Tarou=山田^太郎=やまだ^たろう'
HOSTILE_HEADERS = {
    # de-identified: Type 2 attributes absent
    'type2':
    lambda ds: [
        delattr(ds, k) for k in
        ('PatientBirthDate', 'StudyDate', 'StudyID', 'PatientID', 'PatientName', 'AccessionNumber')
        if k in ds
    ],
    'japanese':
    lambda ds: (setattr(ds, 'SpecificCharacterSet', ['', 'ISO 2022 IR 87']),
                setattr(ds, 'PatientName', JAPANESE)),
    'too long':
    lambda ds: (setattr(ds, 'PatientName', 'A' * 401), setattr(ds, 'PatientID', 'B' * 100)),
}


@pytest.mark.parametrize('kind', list(HOSTILE_HEADERS))
def test_real_world_headers_make_valid_seg_and_sr(kind, tmp_path):
    """Issue 34 items 7, 16: Type 2 attributes missing, ISO 2022 code extensions, values longer
    than their VR: the SEG and SR are written, valid (dciodvfy), with what had to change as a
    warning; the source files are not changed."""
    hu, lesions = head_to_feet_phantom(24, 64)
    src = tmp_path / 'ct'
    write_dicom_series(hu, SPACING, str(src))
    for f in glob.glob(str(src / '*.dcm')):
        ds = pydicom.dcmread(f)
        HOSTILE_HEADERS[kind](ds)
        ds.save_as(f)
    before = pydicom.dcmread(sorted(glob.glob(str(src / '*.dcm')))[0])
    folder = write_case(
        phantom_result(read_ct(str(src)), lesions), str(tmp_path / 'out'), outputs=('dicom-sr', ))
    with open(osp.join(folder, 'lesions.json')) as f:
        warnings = json.load(f)['warnings']
    seg, sr = (pydicom.dcmread(osp.join(folder, n)) for n in ('lesions_seg.dcm', 'lesions_sr.dcm'))
    for ds in (seg, sr):
        if kind == 'type2':
            assert ds.PatientID == '' and ds.StudyDate == '' and 'PatientID' in ds
        elif kind == 'japanese':
            assert str(ds.PatientName) == JAPANESE
            assert list(ds.SpecificCharacterSet) == ['ISO 2022 IR 6', 'ISO 2022 IR 87']
        else:
            assert str(ds.PatientName) == 'A' * 64 and ds.PatientID == 'B' * 64
    want = {
        'type2': 'PatientID missing in the source: written empty (Type 2)',
        'japanese': None,
        'too long': 'PatientName (PN, 401 characters) truncated to fit its VR'
    }[kind]
    assert (want is None and not warnings) or any(want in w for w in warnings)
    again = pydicom.dcmread(sorted(glob.glob(str(src / '*.dcm')))[0])
    assert again.get('PatientName') == before.get('PatientName')  # the source is as it was
    if shutil.which('dciodvfy'):  # .ci/run installs it
        for name in ('lesions_seg.dcm', 'lesions_sr.dcm'):
            out = subprocess.run(['dciodvfy', osp.join(folder, name)],
                                 capture_output=True,
                                 text=True)
            errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith('Error')]
            assert not errors, (name, errors)


def test_a_failing_dicom_output_keeps_the_other_outputs(tmp_path, monkeypatch):
    """Issue 34 item 16: highdicom refusing the source costs the SEG and SR only: lesions.json
    (saying why) and lesions.nii.gz are written, the manifest does not list the DICOM types (so
    --skip-done runs the case again), and the error names the folder."""
    from acsdet.export import is_done
    from acsdet.export.case_writer import PartialCaseError
    hu, lesions = head_to_feet_phantom(24, 64)
    write_dicom_series(hu, SPACING, str(tmp_path / 'ct'))
    result = phantom_result(read_ct(str(tmp_path / 'ct')), lesions)

    def refuse(*args, **kwargs):
        raise ValueError('a header highdicom does not take')

    monkeypatch.setattr(hd.seg, 'Segmentation', refuse)
    with pytest.raises(
            PartialCaseError,
            match=r'the DICOM outputs failed \(dicom-seg: ValueError: '
            r'a header highdicom does not take\); the other outputs are in .*ct'):
        write_case(result, str(tmp_path / 'out'), outputs=('nifti', 'dicom-sr'))
    folder = tmp_path / 'out' / 'ct'
    assert sorted(os.listdir(folder)) == [
        'acsdet-case.json', 'lesions.csv', 'lesions.json', 'lesions.nii.gz', 'report.html'
    ]
    js = json.loads((folder / 'lesions.json').read_text())
    assert js['dicom']['error'].startswith('dicom-seg: ValueError')
    assert any('dicom-seg, dicom-sr not written' in w for w in js['warnings'])
    key = result.volume.input_key
    assert is_done(str(folder), key, ('json', 'nifti'))
    assert not is_done(str(folder), key, ('json', 'nifti', 'dicom-seg', 'dicom-sr'))
