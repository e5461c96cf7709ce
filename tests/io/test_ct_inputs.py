"""Reading CTs under hostile input: slice order, truncated and damaged files, NaN voxels,
implausible geometry, enhanced CT, DICOM oddities; every problem a clear error or a counted
warning, never a silent wrong volume."""
import gzip
import os

import numpy as np
import pytest
import SimpleITK as sitk

from acsdet.io import CTReadError, CTVolume, read_ct, volume_to_image
from acsdet.io.ct_volume import AIR_HU
from acsdet.testing.ct_files import (ORIENTATIONS, head_to_feet_phantom, lps_image, stored_image,
                                     write_dicom_series, write_enhanced_ct, write_png_series)

SPACING = (2.5, 0.8, 0.8)  # (z, y, x) mm


@pytest.fixture(scope='module')
def body(tmp_path_factory):
    """One physical CT (lungs at the head end, pelvis at the feet) in every input form."""
    out = tmp_path_factory.mktemp('body')
    hu, lesions = head_to_feet_phantom(num_slices=16, size=48)
    files = dict(png=write_png_series(hu, str(out / '000001_01_01'), first_index=10))
    top_s = -10 * SPACING[0]  # PNG slice i sits at S = -i x interval
    img = lps_image(hu, SPACING, top_s)
    for name, (perm, flip) in ORIENTATIONS.items():
        files[name] = str(out / f'{name}.nii.gz')
        sitk.WriteImage(stored_image(img, perm, flip), files[name])
    files['nrrd'] = str(out / 'body.nrrd')
    sitk.WriteImage(img, files['nrrd'])
    positions = top_s - np.arange(len(hu)) * SPACING[0]
    write_dicom_series(hu, SPACING, str(out / 'dicom'), positions=positions)
    files['dicom'] = str(out / 'dicom')
    files['enhanced'] = write_enhanced_ct(
        hu,
        SPACING,
        str(out / 'enhanced.dcm'),
        positions,
        frame_order=np.random.default_rng(1).permutation(16))
    return dict(hu=hu, files=files, out=out, lesions=lesions)


def _read(body, name):
    kw = dict(spacing=SPACING[1], slice_interval=SPACING[0]) if name == 'png' else {}
    return read_ct(body['files'][name], **kw)


FORMS = ['png', 'LPS', 'RAS', 'LPI', 'coronal', 'nrrd', 'dicom', 'enhanced']


@pytest.mark.parametrize('name', FORMS)
def test_every_form_reaches_the_model_head_first_like_deeplesion(body, name):
    """DeepLesion's slice index runs towards the feet: whatever the file's storage order, the
    volume's slice 0 is the most superior slice (the lungs), and its LPS positions say so."""
    vol = _read(body, name)
    np.testing.assert_array_equal(vol.hu, body['hu'])
    lungs = ((vol.hu > -920) & (vol.hu < -780)).mean(axis=(1, 2))  # lung, not outside air
    assert lungs[:8].min() > 0.05 and lungs[8:].max() < 0.01  # lungs above, pelvis below
    s = vol.to_lps(np.array([[0, 0, k] for k in range(len(vol.hu))]))[:, 2]
    np.testing.assert_allclose(s, -np.arange(10, 26) * SPACING[0], atol=1e-3)
    np.testing.assert_allclose(vol.spacing, SPACING, rtol=1e-5)
    if name not in ('png', 'dicom', 'enhanced'):  # stored indices: the file's own geometry
        stored = sitk.ReadImage(body['files'][name])
        for c in ([0, 0, 0], [47, 3, 15], [10.5, 20.25, 7]):
            p = stored.TransformContinuousIndexToPhysicalPoint(
                [float(v) for v in vol.to_stored_index(c)])
            np.testing.assert_allclose(p, vol.to_lps(c), atol=1e-3)


def test_png_series_exported_to_nifti_shows_the_head_at_the_top(body, tmp_path):
    """data_converters/deeplesion_to_nifti.py: the NIfTI of a PNG series carries the geometry of
    DeepLesion's slice order (its slice axis points to the feet) and reads back identically."""
    from data_converters import deeplesion_to_nifti
    out = tmp_path / 'nifti'
    written, failed = deeplesion_to_nifti.main([
        body['files']['png'], '--out-dir',
        str(out), '--spacing',
        str(SPACING[1]), '--slice-interval',
        str(SPACING[0])
    ])
    assert written == [str(out / '000001_01_01.nii.gz')] and not failed
    img = sitk.ReadImage(str(out / '000001_01_01.nii.gz'))
    assert np.array(img.GetDirection()).reshape(3, 3)[2, 2] == -1.0  # slice axis towards I
    first = img.TransformIndexToPhysicalPoint((0, 0, 0))[2]
    last = img.TransformIndexToPhysicalPoint((0, 0, 15))[2]
    assert first > last  # slice 0 (the lungs) is the superior end
    back = read_ct(str(out / '000001_01_01.nii.gz'))
    np.testing.assert_array_equal(back.hu, body['hu'])
    np.testing.assert_allclose(back.origin, _read(body, 'png').origin, atol=1e-4)


def test_nifti_conversion_never_writes_over_an_input_or_a_users_file(body, tmp_path, capsys):
    """Issue 34 item 1: the input's own folder as --out-dir (the input stays float32, exit 1),
    two inputs of one base name (two files), a user's file of that name (left as it was)."""
    import shutil

    from data_converters import deeplesion_to_nifti
    src = tmp_path / 'in' / 'CT.nii.gz'
    src.parent.mkdir()
    sitk.WriteImage(sitk.Cast(sitk.ReadImage(body['files']['LPS']), sitk.sitkFloat32), str(src))
    before = src.read_bytes()
    written, failed = deeplesion_to_nifti.main([str(src), '--out-dir', str(src.parent)])
    assert written == [] and failed == [str(src)] and src.read_bytes() == before
    assert 'is an input of this run' in capsys.readouterr().err
    twin = tmp_path / 'other' / 'CT.nii.gz'
    twin.parent.mkdir()
    shutil.copy(src, twin)
    out = tmp_path / 'out'
    written, failed = deeplesion_to_nifti.main([str(src), str(twin), '--out-dir', str(out)])
    assert not failed and len(set(written)) == 2 and written[0] == str(out / 'CT.nii.gz')
    assert sorted(os.listdir(out)) == sorted(
        ['.acsdet-files.json', 'CT.nii.gz',
         os.path.basename(written[1])])
    user = tmp_path / 'user'
    user.mkdir()
    (user / 'CT.nii.gz').write_text('a file of mine')
    written, failed = deeplesion_to_nifti.main([str(src), '--out-dir', str(user)])
    assert failed and (user / 'CT.nii.gz').read_text() == 'a file of mine'
    assert 'acsdet did not write it' in capsys.readouterr().err


# ---- damaged files ---------------------------------------------------------------------------


@pytest.mark.parametrize('ext', ['.nii', '.nii.gz'])
def test_truncated_nifti_is_refused(body, tmp_path, ext):
    src = tmp_path / f'whole{ext}'
    sitk.WriteImage(sitk.ReadImage(body['files']['LPS']), str(src))
    data = src.read_bytes()
    cut = tmp_path / f'cut{ext}'
    cut.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(CTReadError, match=rf'cut{ext.replace(".", "[.]")}: truncated'):
        read_ct(str(cut))
    np.testing.assert_array_equal(read_ct(str(src)).hu, body['hu'])  # the whole file reads


def test_nifti_with_zero_voxel_size_is_refused(body, tmp_path):
    raw = bytearray(gzip.decompress(open(body['files']['LPS'], 'rb').read()))
    raw[76 + 4 * 3:76 + 4 * 4] = np.float32(0).tobytes()  # pixdim[3] (slice) = 0
    (tmp_path / 'zero.nii').write_bytes(bytes(raw))
    with pytest.raises(CTReadError, match=r'zero\.nii: voxel size \(pixdim\).*0\.0.*ITK'):
        read_ct(str(tmp_path / 'zero.nii'))


def test_damaged_metaimage_names_the_problem(body, tmp_path):
    sitk.WriteImage(sitk.ReadImage(body['files']['LPS']), str(tmp_path / 'ok.mha'))
    data = (tmp_path / 'ok.mha').read_bytes()
    (tmp_path / 'cut.mha').write_bytes(data[:len(data) // 2])
    with pytest.raises(CTReadError) as e:
        read_ct(str(tmp_path / 'cut.mha'))
    assert 'cut.mha: unreadable (not a readable MetaImage file' in str(e.value)
    assert 'No such file' not in str(e.value)


# ---- voxels and geometry ---------------------------------------------------------------------


def _volume(hu, spacing=(2.0, 0.8, 0.8), source='test volume'):
    z = np.arange(len(hu)) * spacing[0]
    return CTVolume(hu, spacing, z, np.zeros(3), np.diag([1.0, 1.0, -1.0]),
                    ((0, 1, 2), (False, False, False), hu.shape[::-1]), None, source, 'test')


def test_nan_voxels_become_air_with_a_count_and_all_nan_is_refused():
    hu = np.full((5, 40, 40), 30.0, np.float32)
    hu[2, 7, :] = np.nan  # one NaN row
    hu[0, 0, 0] = np.inf
    with pytest.warns(UserWarning, match=r'41 voxels .* NaN or infinite; set to -1024 HU'):
        vol = _volume(hu)
    assert np.isfinite(vol.hu).all() and (vol.hu == AIR_HU).sum() == 41
    assert np.isnan(hu[2, 7]).all()  # the caller's array is not changed
    assert any('41 voxels' in w for w in vol.warnings)
    with pytest.raises(CTReadError, match='test volume: no voxel is a finite number'):
        _volume(np.full((3, 40, 40), np.nan, np.float32))


@pytest.mark.parametrize('spacing', [(2.0, 0.0, 0.8), (2.0, 0.8, -0.8), (np.nan, 0.8, 0.8),
                                     (2.0, np.inf, 0.8)])
def test_non_positive_or_non_finite_spacing_is_refused(spacing):
    with pytest.raises(CTReadError, match=r'test volume: voxel spacing .* finite positive'):
        _volume(np.zeros((4, 40, 40), np.float32), spacing)


@pytest.mark.parametrize('spacing,what', [((2.0, 0.0001, 0.0001), 'pixel spacing'),
                                          ((2.0, 100.0, 100.0), 'pixel spacing'),
                                          ((60.0, 0.8, 0.8), 'slice spacing')])
def test_implausible_spacing_is_warned_about(spacing, what):
    with pytest.warns(UserWarning, match=rf'{what} .* outside the plausible CT range'):
        vol = _volume(np.zeros((4, 40, 40), np.float32), spacing)
    assert any(what in w for w in vol.warnings)


def test_png_series_with_bad_spacing_is_refused(body):
    for bad in (float('nan'), -0.8, 0.0):
        with pytest.raises(CTReadError, match=r'000001_01_01: pixel spacing .* finite positive'):
            read_ct(body['files']['png'], spacing=bad, slice_interval=2.0)
        with pytest.raises(CTReadError, match=r'slice interval .* finite positive'):
            read_ct(body['files']['png'], spacing=0.8, slice_interval=bad)


def test_slices_too_small_for_a_ct_are_refused(tmp_path):
    sitk.WriteImage(
        sitk.GetImageFromArray(np.zeros((600, 24, 3), np.int16)), str(tmp_path / 'thin.nii.gz'))
    with pytest.raises(CTReadError, match=r'thin\.nii\.gz: slices of 3 x 24 px are not CT'):
        read_ct(str(tmp_path / 'thin.nii.gz'))


# ---- DICOM -----------------------------------------------------------------------------------


def test_enhanced_ct_of_another_quantity_is_refused(body, tmp_path):
    path = write_enhanced_ct(
        body['hu'][:4], SPACING, str(tmp_path / 'perfusion.dcm'), real_world_unit='ml/100ml/s')
    with pytest.raises(CTReadError) as e:
        read_ct(path)
    assert 'perfusion.dcm: frame 1 holds Regional Cerebral Blood Flow in ml/100ml/s' in str(e.value)
    # in a folder, GDCM finds it as a one-file series: the same reader, the same answer
    os.makedirs(tmp_path / 'folder')
    os.replace(path, tmp_path / 'folder' / 'perfusion.dcm')
    with pytest.raises(CTReadError, match='not CT values in HU'):
        read_ct(str(tmp_path / 'folder'))


def test_enhanced_ct_in_a_folder_reads_as_the_file(body, tmp_path):
    os.makedirs(tmp_path / 'study')
    write_enhanced_ct(
        body['hu'],
        SPACING,
        str(tmp_path / 'study' / 'IM0001'),
        positions=-np.arange(16) * SPACING[0])
    vol = read_ct(str(tmp_path / 'study'))
    np.testing.assert_array_equal(vol.hu, body['hu'])
    assert vol.source.startswith('enhanced CT')


def test_one_classic_dicom_file_points_to_its_folder(body, tmp_path):
    write_dicom_series(body['hu'][:3], SPACING, str(tmp_path / 's'))
    one = os.path.join(tmp_path / 's', sorted(os.listdir(tmp_path / 's'))[0])
    with pytest.raises(CTReadError, match='one DICOM image, not an enhanced .*pass the folder'):
        read_ct(one)


def test_duplicated_dicom_slice_names_both_files(body, tmp_path):
    folder = tmp_path / 'dup'
    write_dicom_series(
        body['hu'][:6], SPACING, str(folder), positions=[0, -2.5, -5, -5, -10, -12.5])
    with pytest.raises(CTReadError) as e:
        read_ct(str(folder))
    msg = str(e.value)
    assert 'two slices at the same position z = -5 mm (' in msg and '.dcm and ' in msg
    assert 'gaps' not in msg


def test_localizer_in_a_series_is_left_out_with_a_note(body, tmp_path):
    folder = tmp_path / 'loc'
    types = [['ORIGINAL', 'PRIMARY', 'AXIAL']] * 6 + [['ORIGINAL', 'PRIMARY', 'LOCALIZER']]
    hu = np.concatenate([body['hu'][:6], body['hu'][:1]])
    write_dicom_series(
        hu,
        SPACING,
        str(folder),
        positions=[0, -2.5, -5, -7.5, -10, -12.5, -5.0],
        image_types=types)
    with pytest.warns(UserWarning, match='left out 1 localizer'):
        vol = read_ct(str(folder))
    np.testing.assert_array_equal(vol.hu, body['hu'][:6])
    assert any('localizer' in w for w in vol.warnings)


def test_dicom_without_pixel_spacing_is_refused(body, tmp_path):
    import pydicom
    folder = tmp_path / 'nops'
    write_dicom_series(body['hu'][:4], SPACING, str(folder))
    for name in os.listdir(folder):
        ds = pydicom.dcmread(folder / name)
        del ds.PixelSpacing
        ds.save_as(folder / name)
    with pytest.raises(CTReadError, match=r'no Pixel Spacing \(0028,0030\)'):
        read_ct(str(folder))


def test_volume_to_image_round_trip_keeps_the_order(body):
    vol = _read(body, 'RAS')
    img = volume_to_image(vol)
    back = sitk.GetArrayFromImage(sitk.DICOMOrient(img, 'LPI'))
    np.testing.assert_array_equal(back, body['hu'])
