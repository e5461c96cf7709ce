"""io/reading: every format of one CT read to the same volume, and bad input."""
import numpy as np
import pytest
import SimpleITK as sitk

from acsdet.io import CTReadError, StoredGeometry, read_ct
from acsdet.testing.ct_files import ORIENTATIONS, write_dicom_series

from ..helpers import FORMATS
from ..helpers import read_phantom as _read


@pytest.mark.parametrize('name', FORMATS)
def test_read_ct_gives_the_same_volume_from_every_format(phantom, name):
    ref = phantom['volume']
    vol = _read(phantom, name)
    assert vol.hu.shape == ref.hu.shape
    np.testing.assert_array_equal(vol.hu, ref.hu)  # slope 0.5 / intercept -1024 applied exactly
    np.testing.assert_allclose(vol.spacing, ref.spacing, rtol=1e-5)
    corners = np.array([[0, 0, 0], [191, 0, 0], [0, 191, 5], [17.5, 40.25, 9]])
    np.testing.assert_allclose(vol.to_lps(corners), ref.to_lps(corners), atol=1e-3)
    if name not in ('png', 'dicom'):
        # stored indices map back onto the same physical points through the file's geometry
        stored = sitk.ReadImage(phantom['files'][name])
        perm, flip = ORIENTATIONS[name]  # relative to LPS; the volume's slice axis points I
        assert vol.to_stored[0] == perm and vol.to_stored[1] == (flip[0], flip[1], not flip[2])
        for c in corners:
            p = stored.TransformContinuousIndexToPhysicalPoint(
                [float(v) for v in vol.to_stored_index(c)])
            np.testing.assert_allclose(p, vol.to_lps(c), atol=1e-3)
        # the volume keeps the file's geometry, not a second copy of its voxels
        assert vol.reference == StoredGeometry.of(stored)
        with pytest.raises(ValueError, match=r'an image of size \(3, 3, 3\) cannot take'):
            vol.reference.apply_to(sitk.Image(3, 3, 3, sitk.sitkUInt8))


def test_dicom_folder_with_two_series_lists_them(phantom):
    with pytest.raises(CTReadError) as e:
        read_ct(phantom['files']['dicom'])
    assert '2 CT series' in str(e.value) and phantom['uid'] in str(e.value)
    assert phantom['other_uid'] in str(e.value)
    small = read_ct(phantom['files']['dicom'], series=phantom['other_uid'])
    np.testing.assert_array_equal(small.hu, phantom['volume'].hu[:3] + 100)


def test_bad_inputs_are_clear_errors(phantom, tmp_path):
    with pytest.raises(CTReadError, match='nothere.nii.gz: no such file'):
        read_ct(str(tmp_path / 'nothere.nii.gz'))
    (tmp_path / 'notes.txt').write_text('hello')
    with pytest.raises(CTReadError, match=r'notes\.txt: unsupported file type'):
        read_ct(str(tmp_path / 'notes.txt'))
    (tmp_path / 'broken.nii.gz').write_bytes(b'not a nifti file at all')
    with pytest.raises(CTReadError, match=r'broken\.nii\.gz: unreadable'):
        read_ct(str(tmp_path / 'broken.nii.gz'))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((32, 32), np.int16)), str(tmp_path / '2d.nrrd'))
    with pytest.raises(CTReadError, match=r'2d\.nrrd: .*3 dimensions'):
        read_ct(str(tmp_path / '2d.nrrd'))
    hu = phantom['volume'].hu[:5]
    write_dicom_series(hu, (2.0, 1.0, 1.0), tmp_path / 'mr', modality='MR')
    with pytest.raises(
            CTReadError, match='mr: no CT series; left out .*modality MR, not a CT image'):
        read_ct(str(tmp_path / 'mr'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(CTReadError, match='empty: holds no DICOM file'):
        read_ct(str(tmp_path / 'empty'))


def test_dicom_oddities_are_warned_about(phantom, tmp_path):
    hu = phantom['volume'].hu[:6]
    write_dicom_series(
        hu, (2.0, 1.0, 1.0), tmp_path / 'uneven', positions=np.array([0, 2, 4, 7, 9, 11.0]))
    with pytest.warns(UserWarning, match='inconsistent slice spacing'):
        vol = read_ct(str(tmp_path / 'uneven'))
    np.testing.assert_allclose(vol.z_positions, [0, 2, 4, 7, 9, 11])  # the real positions
    assert any('inconsistent' in w for w in vol.warnings)
    write_dicom_series(hu, (2.0, 1.0, 1.0), tmp_path / 'corrupt')
    (tmp_path / 'corrupt' / 'zz_broken.dcm').write_bytes(b'DICM but not really')
    with pytest.warns(UserWarning, match='zz_broken.dcm'):
        vol = read_ct(str(tmp_path / 'corrupt'))
    assert vol.hu.shape[0] == 6
