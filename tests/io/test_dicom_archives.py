"""DICOM as archives hold it: compressed transfer syntaxes, enhanced CT, nested study folders with
several series, localizers and secondary captures, a .zip of a study; and what is refused."""
import glob
import os
import os.path as osp
import re
import tempfile
import zipfile

import numpy as np
import pydicom
import pytest

from acsdet.io import CTReadError, read_ct
from acsdet.io.dicom_discovery import describe_series, scan_folder
from acsdet.testing.ct_files import (TRANSFER_SYNTAXES, head_to_feet_phantom, transcode,
                                     write_dicom_series, write_enhanced_ct, write_study)
from acsdet.utils.errors import cli_message

SPACING = (2.0, 0.8, 0.8)


@pytest.fixture(scope='module')
def hu():
    return head_to_feet_phantom(10, 48)[0]


@pytest.mark.parametrize('syntax', TRANSFER_SYNTAXES)
def test_a_compressed_series_reads_as_the_uncompressed_one(hu, tmp_path, syntax):
    write_dicom_series(hu, SPACING, str(tmp_path / 'plain'))
    os.makedirs(tmp_path / 'packed')
    for f in glob.glob(str(tmp_path / 'plain' / '*.dcm')):
        transcode(f, str(tmp_path / 'packed' / osp.basename(f)), syntax)
    one = glob.glob(str(tmp_path / 'packed' / '*.dcm'))[0]
    assert pydicom.dcmread(one).file_meta.TransferSyntaxUID == getattr(pydicom.uid, syntax)
    plain, packed = read_ct(str(tmp_path / 'plain')), read_ct(str(tmp_path / 'packed'))
    np.testing.assert_array_equal(packed.hu, plain.hu)
    np.testing.assert_array_equal(packed.hu, hu)
    np.testing.assert_allclose(packed.z_positions, plain.z_positions)
    assert [d.SOPInstanceUID
            for d in packed.dicom.datasets] == [d.SOPInstanceUID for d in plain.dicom.datasets]


@pytest.mark.parametrize('syntax', TRANSFER_SYNTAXES)
def test_a_compressed_enhanced_ct_reads_as_the_uncompressed_one(hu, tmp_path, syntax):
    plain = write_enhanced_ct(hu, SPACING, str(tmp_path / 'ct.dcm'), slope=0.5)
    packed = transcode(plain, str(tmp_path / 'packed.dcm'), syntax)
    assert pydicom.dcmread(packed).file_meta.TransferSyntaxUID == getattr(pydicom.uid, syntax)
    vol = read_ct(packed)
    np.testing.assert_array_equal(vol.hu, hu)
    # stored slices ascend along the slice normal (feet to head): the feet-first frames in order
    assert vol.dicom.frames == list(range(len(hu)))


@pytest.fixture
def study(hu, tmp_path):
    """patient/study/{thin, thick, scout, sc}: a 2 mm and a 4 mm CT series, a localizer series,
    a secondary capture and a text file, nested as an archive exports them."""
    return write_study(str(tmp_path / 'PAT001'), hu, SPACING)


def test_series_are_found_at_any_depth_and_what_is_not_ct_is_named(study, hu):
    series, skipped = scan_folder(study['root'])
    kinds = {s.description: s.kind for s in series}
    assert kinds == {
        'thin': 'ct',
        'thick': 'ct',
        'scout': 'localizer',
        'dose report': 'secondary-capture'
    }
    assert skipped == [osp.join('STUDY_20260101', 'notes.txt')]
    with pytest.raises(
            CTReadError, match=r'PAT001: holds 2 CT series, pick one with series .*'
            r'all_series') as e:
        read_ct(study['root'])
    assert re.search(r'pick one with --series .*--all-series; --list', cli_message(e.value))
    assert study['thin'] in str(e.value) and study['thick'] in str(e.value)
    vol = read_ct(study['root'], series=study['thick'])
    np.testing.assert_array_equal(vol.hu, hu[::2])
    note = ' '.join(vol.warnings)
    assert "#1 'scout' (localizer / scout images, 1 image(s))" in note
    assert "#999 'dose report' (secondary capture, 1 image(s))" in note
    assert '1 non-DICOM file(s)' in note
    listing = describe_series(study['root'])
    thin_row = next(ln for ln in listing.splitlines() if study['thin'] in ln).split()
    assert thin_row[1:] == [
        '2', 'thin', 'ct', '10', '2',
        osp.join('STUDY_20260101', 'SER1', 'thin')
    ]
    thick_row = next(ln for ln in listing.splitlines() if study['thick'] in ln).split()
    assert thick_row[4:6] == ['5', '4']
    assert 'left out: localizer / scout images' in listing and 'left out: secondary capture' in (
        listing) and listing.startswith(f'{study["root"]}: 2 CT series, 4 in all')


def test_a_zip_of_the_study_reads_like_the_folder(study, hu, tmp_path):
    zpath = tmp_path / 'study.zip'
    with zipfile.ZipFile(zpath, 'w', zipfile.ZIP_DEFLATED) as z:
        for d, _, files in os.walk(study['root']):
            for f in files:
                z.write(osp.join(d, f), osp.relpath(osp.join(d, f), tmp_path))
    before = set(glob.glob(osp.join(tempfile.gettempdir(), 'acsdet-zip-*')))
    vol = read_ct(str(zpath), series=study['thin'])
    np.testing.assert_array_equal(vol.hu, hu)
    assert vol.name == 'study' and str(zpath) in vol.source
    assert len(vol.dicom.datasets) == len(hu)  # headers kept after the extraction is gone
    assert set(glob.glob(osp.join(tempfile.gettempdir(), 'acsdet-zip-*'))) == before
    assert describe_series(str(zpath)).startswith(f'{zpath}: 2 CT series, 4 in all')
    empty = tmp_path / 'empty.zip'
    with zipfile.ZipFile(empty, 'w') as z:
        z.writestr('readme.txt', 'no images')
    with pytest.raises(CTReadError, match=r'empty\.zip: holds no DICOM file \(1 other file'):
        read_ct(str(empty))
    (tmp_path / 'broken.zip').write_bytes(zpath.read_bytes()[:200])  # truncated
    with pytest.raises(CTReadError, match=r'broken\.zip: a damaged or truncated zip'):
        read_ct(str(tmp_path / 'broken.zip'))


def test_missing_slices_and_mixed_sizes_are_refused_naming_files(hu, tmp_path):
    write_dicom_series(hu, SPACING, str(tmp_path / 'gap'))
    files = {pydicom.dcmread(f).InstanceNumber: f for f in glob.glob(str(tmp_path / 'gap/*'))}
    os.remove(files[5])
    os.remove(files[6])
    with pytest.raises(
            CTReadError,
            match=r'2 slice\(s\) missing between instance (4 and 7|7 and '
            r'4) .*a 6 mm gap where the series steps 2 mm'):
        read_ct(str(tmp_path / 'gap'))
    # uneven on purpose (positions and instance numbers agree): read, with a note
    pos = -np.array([0, 2, 4, 6, 8, 12, 14, 16, 18, 20], float)
    write_dicom_series(hu, SPACING, str(tmp_path / 'uneven'), positions=pos)
    assert any('inconsistent slice spacing' in w
               for w in read_ct(str(tmp_path / 'uneven')).warnings)
    uid = write_dicom_series(hu, SPACING, str(tmp_path / 'mixed'))
    write_dicom_series(
        np.zeros((1, 40, 40), np.float32),
        SPACING,
        str(tmp_path / 'mixed'),
        series_uid=uid,
        positions=[-30.0])
    with pytest.raises(
            CTReadError,
            match=r'slices of mixed sizes \(1 of 11 are not 48 x 48 px: '
            r'\w+\.dcm is 40 x 40\)'):
        read_ct(str(tmp_path / 'mixed'))


def test_one_discovery_extracts_and_scans_a_study_once_per_run(study, hu, tmp_path, monkeypatch):
    """Inside one_discovery, planning (series expansion) and reading share one extraction and
    one header scan of a zip; the extraction is gone when the block ends."""
    from acsdet.export.batch import Case
    from acsdet.export.planner import expand_series
    from acsdet.io import dicom_discovery
    zpath = tmp_path / 'study.zip'
    with zipfile.ZipFile(zpath, 'w') as z:
        for d, _, files in os.walk(study['root']):
            for f in files:
                z.write(osp.join(d, f), osp.relpath(osp.join(d, f), tmp_path))
    extractions, scans = [], []
    real_extract, real_scan = zipfile.ZipFile.extractall, dicom_discovery._scan_folder
    monkeypatch.setattr(zipfile.ZipFile, 'extractall',
                        lambda self, *a, **k: extractions.append(1) or real_extract(self, *a, **k))
    monkeypatch.setattr(dicom_discovery, '_scan_folder',
                        lambda folder: scans.append(folder) or real_scan(folder))
    before = set(glob.glob(osp.join(tempfile.gettempdir(), 'acsdet-zip-*')))
    with dicom_discovery.one_discovery():
        cases = expand_series(Case(str(zpath), None, 'study'))
        vols = [read_ct(c.path, series=c.series) for c in cases]
        assert len(set(glob.glob(osp.join(tempfile.gettempdir(), 'acsdet-zip-*'))) - before) == 1
    assert [c.series for c in cases] == [study['thin'], study['thick']]
    np.testing.assert_array_equal(vols[0].hu, hu)
    assert len(extractions) == 1 and len(scans) == 1
    assert set(glob.glob(osp.join(tempfile.gettempdir(), 'acsdet-zip-*'))) == before
    expand_series(Case(str(zpath), None, 'study'))  # outside the block: afresh every time
    read_ct(str(zpath), series=study['thin'])
    assert len(extractions) == 3 and len(scans) == 3
    from tools import infer
    assert infer.main(['--list', str(zpath), str(zpath)]) == 0  # --list: one extraction a run
    assert len(extractions) == 4 and len(scans) == 4


def test_slices_that_are_not_one_ct_are_refused_naming_the_files(hu, tmp_path):
    """Two pixel spacings, one SOPInstanceUID twice, another patient / study / frame of
    reference in one series: refused, naming a file of each side (issue 34, items 5, 6, 11)."""
    import shutil
    src = tmp_path / 'ct'
    write_dicom_series(hu, SPACING, src)
    files = sorted(glob.glob(str(src / '*.dcm')))

    def variant(name, edit):
        folder = tmp_path / name
        shutil.copytree(src, folder)
        target = folder / osp.basename(files[0])
        ds = pydicom.dcmread(target)
        edit(ds)
        ds.save_as(target)
        return str(folder), osp.basename(files[0])

    folder, odd = variant('spacing', lambda ds: setattr(ds, 'PixelSpacing', [0.5, 0.5]))
    with pytest.raises(
            CTReadError,
            match=rf'1 of {len(hu)} slices have another PixelSpacing '
            rf'than the rest \(PixelSpacing \[0\.5, 0\.5\] in {odd}'):
        read_ct(folder)
    for what in ('PatientID', 'StudyInstanceUID', 'FrameOfReferenceUID'):
        folder, odd = variant(what, lambda ds: setattr(ds, what, '1.2.3.4'))
        with pytest.raises(CTReadError, match=rf'another {what} than the rest .*in {odd}'):
            read_ct(folder)
    dup = tmp_path / 'dup'
    shutil.copytree(src, dup)
    shutil.copy(files[0], dup / 'copy_of_first.dcm')
    with pytest.raises(
            CTReadError,
            match=r'copy_of_first\.dcm have one SOPInstanceUID|'
            r'and copy_of_first\.dcm have one SOPInstanceUID'):
        read_ct(str(dup))
    np.testing.assert_array_equal(read_ct(str(src)).hu, hu)  # the series itself reads


def test_a_fifo_in_a_dicom_folder_is_skipped_not_read(hu, tmp_path):
    """Only regular files are read: a named pipe would block forever (issue 34, item 17)."""
    write_dicom_series(hu, SPACING, tmp_path / 'ct')
    os.mkfifo(tmp_path / 'ct' / 'pipe')
    series, skipped = scan_folder(str(tmp_path / 'ct'))
    assert skipped == ['pipe'] and len(series) == 1
    np.testing.assert_array_equal(read_ct(str(tmp_path / 'ct')).hu, hu)


def test_a_linked_series_folder_is_found_once_and_link_loops_end(hu, tmp_path):
    """A symlinked series folder is followed (it gave '0 CT series'); a link back to a parent
    and a second link to the same folder are not walked again (issue 34, item 12)."""
    write_dicom_series(hu, SPACING, tmp_path / 'store' / 'ct')
    study = tmp_path / 'study'
    study.mkdir()
    os.symlink(tmp_path / 'store' / 'ct', study / 'series')
    os.symlink(tmp_path / 'store' / 'ct', study / 'again')
    os.symlink(study, study / 'loop')
    series, skipped = scan_folder(str(study))
    assert len(series) == 1 and len(series[0].files) == len(hu) and skipped == []
    np.testing.assert_array_equal(read_ct(str(study)).hu, hu)


def _zip_of(study, path):
    with zipfile.ZipFile(path, 'w') as z:
        for d, _, files in os.walk(study['root']):
            for f in files:
                z.write(osp.join(d, f), osp.relpath(osp.join(d, f), study['root']))
    return str(path)


def test_a_zip_over_the_size_limit_or_the_free_space_is_refused_before_extraction(
        study, tmp_path, monkeypatch):
    """Issue 34 item 3: a few kB that unpack to 64 MB, against a 1 MB limit; and too little free
    space. Nothing is left in the temporary folder."""
    import shutil
    from collections import namedtuple

    from acsdet.io import dicom_discovery
    bomb = tmp_path / 'bomb.zip'
    with zipfile.ZipFile(bomb, 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr('zeros.dcm', bytes(64 << 20))
    assert bomb.stat().st_size < 200_000
    before = set(glob.glob(osp.join(tempfile.gettempdir(), 'acsdet-zip-*')))
    monkeypatch.setattr(dicom_discovery, 'MAX_UNZIP_BYTES', 1 << 20)
    with pytest.raises(
            CTReadError,
            match=r'bomb\.zip: the zip holds 0\.0625 GiB uncompressed, '
            r'more than the limit of 0\.000977 GiB \(ACSDET_MAX_UNZIP_GB\)'):
        read_ct(str(bomb))
    monkeypatch.setattr(dicom_discovery, 'MAX_UNZIP_BYTES', 1 << 40)
    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr(shutil, 'disk_usage', lambda p: usage(1 << 30, 1 << 30, 1 << 20))
    with pytest.raises(CTReadError, match=r'extracting needs .* GiB free \(set TMPDIR'):
        read_ct(_zip_of(study, tmp_path / 'study.zip'))
    assert set(glob.glob(osp.join(tempfile.gettempdir(), 'acsdet-zip-*'))) == before


SIGTERM_DURING_EXTRACTION = """
import sys, time
sys.path.insert(0, {root!r})
from acsdet.io.dicom_discovery import dicom_folder
from acsdet.utils.signals import terminate_as_exit
with terminate_as_exit(), dicom_folder({zip!r}) as folder:
    print(folder, flush=True)
    time.sleep(60)
"""


def test_sigterm_removes_the_extracted_study_and_stale_extractions_are_removed(study, tmp_path):
    """Issue 34 items 3, 4: SIGTERM (exit 143) cleans up as SIGINT does; an extraction folder
    whose lock nobody holds (its process gone, on any host) is removed by the next extraction,
    a live one's is kept, and one without a lock file only once it is old."""
    import signal
    import subprocess
    import sys
    import time

    from acsdet.io.dicom_discovery import _OWNER_LOCK, remove_stale_extractions
    from tests.helpers import ROOT
    zpath = _zip_of(study, tmp_path / 'study.zip')
    proc = subprocess.Popen(
        [sys.executable, '-c',
         SIGTERM_DURING_EXTRACTION.format(root=ROOT, zip=zpath)],
        stdout=subprocess.PIPE,
        text=True)
    folder = proc.stdout.readline().strip()
    assert osp.isfile(osp.join(folder, _OWNER_LOCK)) and len(os.listdir(folder)) > 1
    live = subprocess.Popen(
        [sys.executable, '-c',
         SIGTERM_DURING_EXTRACTION.format(root=ROOT, zip=zpath)],
        stdout=subprocess.PIPE,
        text=True)
    live_folder = live.stdout.readline().strip()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 143 and not osp.exists(folder)
    parent = tmp_path / 'tmp'
    for name in ('acsdet-zip-gone', 'acsdet-zip-old', 'acsdet-zip-new'):
        (parent / name).mkdir(parents=True)
    (parent / 'acsdet-zip-gone' / _OWNER_LOCK).write_text('')  # its owner's lock ended
    old = time.time() - 2 * 24 * 3600
    os.utime(parent / 'acsdet-zip-old', (old, old))
    assert sorted(osp.basename(p) for p in remove_stale_extractions(str(parent))) == [
        'acsdet-zip-gone', 'acsdet-zip-old'
    ]
    assert os.listdir(parent) == ['acsdet-zip-new']
    assert osp.dirname(live_folder) == tempfile.gettempdir()
    assert live_folder not in remove_stale_extractions()  # held by a running process
    live.kill()
    live.wait(30)
    assert live_folder in remove_stale_extractions()  # killed with -9: its lock ended with it


def test_a_gantry_tilt_is_refused_with_its_angle(hu, tmp_path):
    """Issue 34 item 8: slices stacked along z with the image plane tilted 25 degrees about x
    (IOP tilted): read as a stack they would be sheared, so the series is refused."""
    write_dicom_series(hu, SPACING, str(tmp_path / 'tilt'))
    t = np.radians(25)
    for f in glob.glob(str(tmp_path / 'tilt' / '*.dcm')):
        ds = pydicom.dcmread(f)
        ds.ImageOrientationPatient = [1, 0, 0, 0, float(np.cos(t)), float(np.sin(t))]
        ds.save_as(f)
    with pytest.raises(CTReadError, match=r'a gantry tilt of 25\.0 degrees'):
        read_ct(str(tmp_path / 'tilt'))


def test_dicom_files_without_the_part10_preamble_are_read(hu, tmp_path):
    """Issue 34 item 12: bare data sets (no preamble, no file meta), as GDCM reads them, are a
    series, not "not DICOM"; the SEG of it is written."""
    write_dicom_series(hu, SPACING, str(tmp_path / 'bare'))
    for f in glob.glob(str(tmp_path / 'bare' / '*.dcm')):
        ds = pydicom.dcmread(f)
        ds.preamble, ds.file_meta = None, pydicom.dataset.FileMetaDataset()
        ds.save_as(f, enforce_file_format=False, implicit_vr=True, little_endian=True)
        assert open(f, 'rb').read(132)[128:] != b'DICM'
    (tmp_path / 'bare' / 'notes.txt').write_text('not a data set')
    vol = read_ct(str(tmp_path / 'bare'))
    np.testing.assert_array_equal(vol.hu, hu)
    assert any('1 non-DICOM file(s) (notes.txt)' in w for w in vol.warnings)
    from acsdet.apis import write_case
    from tests.export.test_dicom_outputs import phantom_result
    _, lesions = head_to_feet_phantom(len(hu), hu.shape[1])
    folder = write_case(
        phantom_result(vol, lesions), str(tmp_path / 'out'), outputs=('dicom-seg', ))
    seg = pydicom.dcmread(osp.join(folder, 'lesions_seg.dcm'))
    refs = {
        r.ReferencedSOPInstanceUID
        for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert refs <= {str(d.SOPInstanceUID) for d in vol.dicom.datasets} and refs
