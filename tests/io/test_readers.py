"""The CT reader registry: a new format is one registered class with its own options; read_ct
picks readers by priority or by name, hands each only its options, and names close matches."""
import numpy as np
import pytest

from acsdet.io import CTReadError, CTVolume, read_ct
from acsdet.io.readers import (CT_READERS, CTReader, case_name, get_reader, readers,
                               register_ct_reader)
from acsdet.testing.ct_files import head_to_feet_phantom, write_png_series


def test_built_in_readers_in_dispatch_order():
    names = [r.name for r in readers()]
    assert set(names) >= {'deeplesion-png', 'dicom-series', 'itk-file', 'dicom-enhanced'}
    # a folder of <i>.png files is a PNG series before it is a (DICOM) folder
    assert names.index('deeplesion-png') < names.index('dicom-series')
    assert case_name('/data/scan.nii.gz') == 'scan' and case_name('/d/x.NRRD') == 'x'
    assert case_name('/d/ct.dcm') == 'ct' and case_name('/d/patient1/') == 'patient1'


def test_a_registered_reader_reads_its_format_with_its_own_option(tmp_path):
    hu = np.full((4, 40, 40), -500, np.int16)
    (tmp_path / 'ct.raw16').write_bytes(hu.tobytes())

    try:

        @register_ct_reader
        class Raw16Reader(CTReader):
            name, description, extensions, options = 'raw16', 'a raw file', ('.raw16', ), ('size', )

            def accepts(self, path):
                return path.endswith('.raw16')

            def read(self, path, size=None):
                arr = np.fromfile(path, np.int16).reshape(-1, size, size).astype(np.float32)
                return CTVolume(
                    hu=arr,
                    spacing=(2.0, 1.0, 1.0),
                    z_positions=np.arange(len(arr)) * 2.0,
                    origin=np.zeros(3),
                    direction=np.diag([1.0, 1.0, -1.0]),
                    to_stored=((0, 1, 2), (False, ) * 3, arr.shape[::-1]),
                    reference=None,
                    source=path,
                    name='raw')

        # 'series' is the DICOM reader's option: not handed to this reader
        vol = read_ct(str(tmp_path / 'ct.raw16'), size=40, series='1.2.3')
        assert vol.hu.shape == (4, 40, 40) and float(vol.hu.max()) == -500.0
        assert case_name(str(tmp_path / 'ct.raw16')) == 'ct'
        with pytest.raises(ValueError, match="'raw61' is not one of .*did you mean 'raw16'"):
            read_ct(str(tmp_path / 'ct.raw16'), reader='raw61')
    finally:
        CT_READERS.pop('raw16', None)
    with pytest.raises(CTReadError, match='unsupported file type'):
        read_ct(str(tmp_path / 'ct.raw16'))


def test_read_ct_by_reader_name_and_unknown_options(tmp_path):
    hu, _ = head_to_feet_phantom(num_slices=6, size=40)
    folder = write_png_series(hu, str(tmp_path / '000001_01_01'))
    vol = read_ct(folder, reader='deeplesion-png', spacing=0.8, slice_interval=2.5)
    np.testing.assert_array_equal(vol.hu, hu)
    assert vol.spacing == (2.5, 0.8, 0.8)
    with pytest.raises(CTReadError, match='holds no DICOM file'):  # forced onto the other reader
        read_ct(folder, reader='dicom-series')
    with pytest.raises(TypeError, match=r"option\(s\) \['spacng'\]"):
        read_ct(folder, spacng=0.8)
    assert get_reader('dicom-series').options == ('series', )
    with pytest.raises(KeyError, match="did you mean 'dicom-series'"):
        get_reader('DICOM-series')
