"""export/planner: a reader says whether it reads DICOM; inputs given twice run once; several
manifests add their rows; a DICOM output asked of a non-DICOM input fails that input only."""
import os.path as osp

import numpy as np
import SimpleITK as sitk

from acsdet.export.planner import is_dicom_input, plan_cases
from acsdet.io import readers as registry
from acsdet.io.readers import CTReader, register_ct_reader
from acsdet.utils.errors import cli_message


def test_a_reader_says_whether_it_reads_dicom(tmp_path, monkeypatch):
    path = tmp_path / 'scan.vendor'
    path.write_bytes(b'x')
    assert not is_dicom_input(str(path))

    class VendorDicom(CTReader):  # a DICOM reader whose name does not start with 'dicom'
        name, is_dicom, priority = 'vendor', True, 1

        def accepts(self, p):
            return p.endswith('.vendor')

    monkeypatch.setattr(registry, 'CT_READERS', dict(registry.CT_READERS))
    register_ct_reader(VendorDicom)
    assert is_dicom_input(str(path)) and not is_dicom_input(str(tmp_path / 'gone.vendor'))


def test_a_plan_runs_each_input_once_over_several_manifests(tmp_path):
    for name in ('a', 'b'):
        sitk.WriteImage(
            sitk.GetImageFromArray(np.zeros((4, 8, 8), np.int16)), str(tmp_path / f'{name}.nii.gz'))
    (tmp_path / 'm1.csv').write_text('path\na.nii.gz\n')
    (tmp_path / 'm2.csv').write_text('path,case\nb.nii.gz,bee\na.nii.gz,\n')
    plan = plan_cases([str(tmp_path / 'a.nii.gz')],
                      str(tmp_path / 'out'),
                      [str(tmp_path / 'm1.csv'), str(tmp_path / 'm2.csv')],
                      outputs=('json', 'dicom-seg'))
    assert plan.cases == [] and plan.names == []
    assert [osp.basename(c.path) for c, _ in plan.failed] == ['a.nii.gz', 'b.nii.gz']
    assert len(plan.order) == 2 and len(plan.notes) == 2 and 'given twice' in plan.notes[0]
    why = plan.failed[0][1]
    assert 'use outputs' in str(why) and 'use --output-type' in cli_message(
        why, dict(outputs='--output-type'))
    ok = plan_cases([], str(tmp_path / 'out'), [str(tmp_path / 'm2.csv')])
    assert ok.names == ['bee', 'a'] and not ok.failed


def test_a_case_is_never_named_as_the_run_summary(tmp_path):
    """A case named summary.csv (a file, a folder, a manifest's case) gets a hashed name, so the
    run's summary.csv stays writable (issue 34, item 15)."""
    sitk.WriteImage(
        sitk.GetImageFromArray(np.zeros((4, 8, 8), np.int16)), str(tmp_path / 'a.nii.gz'))
    (tmp_path / 'm.csv').write_text('path,case\na.nii.gz,summary.csv\n')
    plan = plan_cases([], str(tmp_path / 'out'), [str(tmp_path / 'm.csv')])
    assert len(plan.names) == 1 and plan.names[0].startswith('summary.csv-')
    assert plan.names[0] != 'summary.csv' and len(plan.names[0]) == len('summary.csv-') + 8


def test_a_sagittal_series_is_refused_for_an_sr_before_the_model_and_named_when_read(tmp_path):
    """Issue 34 item 19: 24 sagittal slices of 64 x 64 px: asking for a DICOM SR fails the case
    at planning; reading it says it is sagittal, not that its slices are not CT slices."""
    import glob

    import pydicom
    import pytest

    from acsdet.io import CTReadError, read_ct
    from acsdet.testing.ct_files import write_dicom_series
    write_dicom_series(np.zeros((24, 64, 64), np.int16), (2.0, 0.8, 0.8), str(tmp_path / 'sag'))
    for f in glob.glob(str(tmp_path / 'sag' / '*.dcm')):
        ds = pydicom.dcmread(f)
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.ImagePositionPatient = [-float(ds.ImagePositionPatient[2]), 0.0, 0.0]
        ds.save_as(f)
    plan = plan_cases([str(tmp_path / 'sag')], str(tmp_path / 'out'), outputs=('json', 'dicom-sr'))
    assert plan.cases == [] and len(plan.failed) == 1
    msg = cli_message(plan.failed[0][1], dict(outputs='--output-type'))
    assert "stored as sagittal slices" in msg and "--output-type 'dicom-seg'" in msg
    assert len(
        plan_cases([str(tmp_path / 'sag')], str(tmp_path / 'out'),
                   outputs=('json', 'dicom-seg')).cases) == 1
    with pytest.raises(
            CTReadError,
            match=r'24 sagittal slices of 64 x 64 px: acsdet detects on '
            r'axial slices, and as axial slices this volume is only 24 x 64 px'):
        read_ct(str(tmp_path / 'sag'))


def test_names_and_messages_that_misled(tmp_path, monkeypatch):
    """Issue 34 item 19: an input '.' is named by its folder; a '#' in a path stays in the path
    the output checks use; a header-only manifest is said to have no rows."""
    import pytest

    from acsdet.export.batch import ManifestError, read_manifest_csv
    from acsdet.export.case_folder import CaseFolderError, check_output_location
    from acsdet.io import case_name, input_key, input_path
    (tmp_path / 'PAT7').mkdir()
    monkeypatch.chdir(tmp_path / 'PAT7')
    assert case_name('.') == 'PAT7' and case_name('./') == 'PAT7' and case_name('..') == (
        tmp_path.name)
    odd = tmp_path / 'a#b' / 'study'
    odd.mkdir(parents=True)
    assert input_path(input_key(str(odd))) == str(odd)
    assert input_path(input_key(str(odd), '1.2.840.99')) == str(odd)
    with pytest.raises(CaseFolderError, match=r'a#b/study/out is inside the input .*a#b/study'):
        check_output_location(str(odd / 'out'), [], [input_path(input_key(str(odd)))])
    (tmp_path / 'm.csv').write_text('path,case\n')
    with pytest.raises(ManifestError, match=r'm\.csv: the manifest has its header row but no'):
        read_manifest_csv(str(tmp_path / 'm.csv'))
    (tmp_path / 'm.csv').write_text('file,case\nx.nii.gz,x\n')
    with pytest.raises(ManifestError, match=r"holding a \"path\" column .* its header is \['file'"):
        read_manifest_csv(str(tmp_path / 'm.csv'))
