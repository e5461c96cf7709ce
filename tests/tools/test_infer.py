"""tools/infer.py and write_case under hostile use: a user's files are never destroyed, case
names never collide, killed runs leave nothing behind, one bad case never stops the others, and
a model sees every form of one CT in the same (DeepLesion's) slice order."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from acsdet.engine.architecture import ARCH_KEY
from acsdet.export.case_folder import MANIFEST
from acsdet.io import read_ct
from acsdet.testing.ct_files import (head_to_feet_phantom, lps_image, write_dicom_series,
                                     write_png_series)

from ..helpers import CONFIG_DEMO, EPOCHS

SPACING = (2.0, 0.8, 0.8)


@pytest.fixture(scope='module')
def ct(tmp_path_factory):
    """A head-to-feet phantom as a PNG series, a NIfTI (stored RAS, head first) and a DICOM
    series of 16 slices."""
    out = tmp_path_factory.mktemp('ct')
    hu, _ = head_to_feet_phantom(num_slices=16, size=48)
    png = write_png_series(hu, str(out / '000002_01_01'))
    img = lps_image(hu, SPACING, 0.0)
    nifti = str(out / 'scan.nii.gz')
    sitk.WriteImage(img, nifti)
    dicom = str(out / 'patient1')
    write_dicom_series(hu, SPACING, dicom)
    return dict(hu=hu, png=png, nifti=nifti, dicom=dicom, out=out)


def _infer(model_files, *args):
    from tools import infer
    return infer.main([str(a) for a in model_files] + [str(a) for a in args] + ['--no-progress'])


def _tree(folder):
    return {
        osp.relpath(osp.join(d, f), folder): open(osp.join(d, f), 'rb').read()
        for d, _, files in os.walk(folder)
        for f in files
    }


# ---- slice order through a model -------------------------------------------------------------


def test_every_form_of_one_ct_gives_identical_detections(model_files, ct):
    """The same physical CT as a DeepLesion PNG series, NIfTI and DICOM reaches the model in the
    same slice order (head to feet), so a depth-asymmetric model finds the same boxes; the same
    volume reversed in depth (the order the reader used to give NIfTI and DICOM) does not."""
    from acsdet.apis import LesionDetector
    det = LesionDetector(*model_files, score_thr=0.0, batch_size=4)
    vols = dict(
        png=read_ct(ct['png'], spacing=SPACING[1], slice_interval=SPACING[0]),
        nifti=read_ct(ct['nifti']),
        dicom=read_ct(ct['dicom']))
    res = {k: det(v, (6, 10)) for k, v in vols.items()}
    ref = res['png'].detections
    assert len(ref) > 10
    for name in ('nifti', 'dicom'):
        got = res[name].detections
        assert [d['slice'] for d in got] == [d['slice'] for d in ref], name
        np.testing.assert_allclose([d['box'] for d in got], [d['box'] for d in ref], atol=0.05)
        np.testing.assert_allclose([d['score'] for d in got], [d['score'] for d in ref], atol=1e-3)
        for a, b in zip(res[name].lesions, res['png'].lesions):
            np.testing.assert_allclose(a.center_lps_mm, b.center_lps_mm, atol=0.02)
    flipped = vols['png']
    flipped.hu = np.ascontiguousarray(flipped.hu[::-1])
    rev = det(flipped, (6, 10)).detections  # slices 6..9 of the reversed volume
    by_slice = {k: sorted(d['score'] for d in ref if d['slice'] == k) for k in range(6, 10)}
    rev_by_slice = {
        15 - k: sorted(d['score'] for d in rev if d['slice'] == k)
        for k in range(6, 10)
    }
    assert any(
        len(by_slice[k]) != len(rev_by_slice.get(k, []))
        or not np.allclose(by_slice[k], rev_by_slice.get(k, []), atol=1e-3) for k in range(6, 10))


# ---- never destroy a user's file -------------------------------------------------------------


def test_output_folder_that_would_replace_an_input_is_refused(model_files, ct, tmp_path, capsys):
    pt = tmp_path / 'pt'
    os.makedirs(pt)
    dicom = pt / 'patient1'
    write_dicom_series(ct['hu'], SPACING, str(dicom))
    (dicom / 'notes.txt').write_text('my notes')
    png = pt / '000002_01_01'
    write_png_series(ct['hu'], str(png))
    before = _tree(pt)
    for inp in (dicom, png):
        extra = ['--spacing', '0.8', '--slice-interval', '2'] if inp == png else []
        assert _infer(model_files, inp, '--out-dir', pt, *extra) == 2
        err = capsys.readouterr().err
        assert f'case folder {osp.join(pt, inp.name)} would be the input' in err
    assert _infer(model_files, dicom, '--out-dir', dicom / 'results') == 2  # into the input
    assert 'is inside the input' in capsys.readouterr().err
    assert _tree(pt) == before  # all 16 DICOM files, the notes, the PNGs: untouched


def test_only_acsdet_case_folders_of_the_same_input_are_replaced(model_files, ct, tmp_path, capsys):
    out = tmp_path / 'out'
    os.makedirs(out / 'scan')
    (out / 'scan' / 'mine.txt').write_text('a user folder that happens to be called scan')
    assert _infer(model_files, ct['nifti'], '--out-dir', out, '--slices', '6:8') == 2
    assert 'acsdet did not write (no acsdet-case.json)' in capsys.readouterr().err
    assert (out / 'scan' / 'mine.txt').read_text().startswith('a user folder')
    (out / 'scan' / 'mine.txt').rename(tmp_path / 'mine.txt')
    os.rmdir(out / 'scan')
    # a case folder of ours is replaced, atomically, with its manifest
    assert _infer(model_files, ct['nifti'], '--out-dir', out, '--slices', '6:8') == 0
    man = json.loads((out / 'scan' / MANIFEST).read_text())
    assert man['complete'] and man['input'] == osp.realpath(ct['nifti'])
    assert set(man['files']) == {'lesions.json', 'lesions.csv', 'report.html'}
    assert _infer(model_files, ct['nifti'], '--out-dir', out, '--slices', '6:9') == 0
    assert json.loads((out / 'scan' / 'lesions.json').read_text())['slices_processed'] == [6, 9]
    # ... but not once a user has put a file of their own into it
    (out / 'scan' / 'review.txt').write_text('radiologist comments')
    assert _infer(model_files, ct['nifti'], '--out-dir', out, '--slices', '6:8') == 2
    assert 'holds files acsdet did not write (review.txt)' in capsys.readouterr().err
    assert (out / 'scan' / 'review.txt').exists()
    # a link to our case folder: the link is replaced, its target kept, no .old left behind
    os.remove(out / 'scan' / 'review.txt')
    os.rename(out / 'scan', tmp_path / 'kept')
    os.symlink(tmp_path / 'kept', out / 'scan')
    assert _infer(model_files, ct['nifti'], '--out-dir', out, '--slices', '6:8') == 0
    assert not (out / 'scan').is_symlink() and (tmp_path / 'kept' / MANIFEST).exists()
    assert sorted(os.listdir(out)) == ['scan', 'summary.csv']


def test_two_inputs_with_one_base_name_get_two_stable_case_folders(model_files, ct, tmp_path,
                                                                   capsys):
    for d in ('a', 'b'):
        os.makedirs(tmp_path / d)
        os.symlink(ct['nifti'], tmp_path / d / 'scan.nii.gz')
    a, b = tmp_path / 'a' / 'scan.nii.gz', tmp_path / 'b' / 'scan.nii.gz'
    # (symlinks to one file are one input: the real path decides)
    assert _infer(model_files, a, b, '--out-dir', tmp_path / 'o1', '--slices', '6:8') == 0
    assert 'is given twice' in capsys.readouterr().out
    os.remove(b)
    sitk.WriteImage(sitk.ReadImage(ct['nifti']), str(b))  # a second, distinct file
    out = tmp_path / 'out'
    assert _infer(model_files, a, b, '--out-dir', out, '--slices', '6:8') == 0
    lines = capsys.readouterr().out
    names = sorted(os.listdir(out))
    assert names.pop() == 'summary.csv'
    assert len(names) == 2 and names[0] == 'scan' and names[1].startswith('scan-')
    for n in names:
        man = json.loads((out / n / MANIFEST).read_text())
        assert man['input'] == osp.realpath(a if n == 'scan' else b)
        assert f'-> {out / n / "report.html"}' in lines
    # later runs: each input keeps its folder, alone or together, in any order
    assert _infer(model_files, b, '--out-dir', out, '--slices', '6:8') == 0
    assert _infer(model_files, b, a, '--out-dir', out, '--slices', '6:8') == 0
    assert sorted(os.listdir(out)) == names + ['summary.csv']
    for n in names:
        assert json.loads(
            (out / n / MANIFEST).read_text())['input'] == osp.realpath(a if n == 'scan' else b)


def test_a_killed_write_leaves_nothing_the_next_run_does_not_remove(model_files, ct, tmp_path):
    from acsdet.apis import write_case
    from acsdet.inference import DetectionResult
    out = tmp_path / 'out'
    assert _infer(model_files, ct['nifti'], '--out-dir', out, '--slices', '6:8') == 0
    vol = read_ct(ct['nifti'])
    res = DetectionResult(vol, [], [], np.zeros(vol.hu.shape, np.uint16), (0, 1), 0.5,
                          dict(total=0))
    pid = os.fork()
    if pid == 0:  # the child is killed between moving the old folder away and the new one in
        real = os.replace

        def dying(src, dst):
            real(src, dst)
            if str(dst).endswith('.old'):
                os._exit(9)

        os.replace = dying
        try:
            write_case(res, str(out))
        finally:
            os._exit(3)  # never reached when the kill came where it should
    assert os.waitpid(pid, 0)[1] >> 8 == 9
    left = sorted(os.listdir(out))
    left.remove('summary.csv')
    assert 'scan' not in left and any(n.endswith('.old')
                                      for n in left) and any(n.endswith('.tmp') for n in left)
    # a temporary of a live run (this process) is not touched
    from acsdet.utils import temporary_name
    live = temporary_name(str(out / '.scan'))
    os.makedirs(live)
    assert _infer(model_files, ct['nifti'], '--out-dir', out, '--slices', '6:8') == 0
    assert sorted(os.listdir(out)) == sorted(['scan', 'summary.csv', osp.basename(live)])
    os.rmdir(live)


def test_converter_write_probe_of_a_killed_run_is_removed(tmp_path):
    from acsdet.utils import check_writable_dir
    gone = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True,
                          text=True).stdout.strip()
    from acsdet.utils.files import _HOST
    stale = tmp_path / f'.write-probe.{_HOST}-{gone}.{"ab" * 16}.tmp'
    stale.write_text('')
    legacy = tmp_path / f'.write-probe.{"cd" * 16}.tmp'  # written before probes had owners
    legacy.write_text('')
    check_writable_dir(str(tmp_path))
    assert os.listdir(tmp_path) == []


# ---- one bad case never stops the others; errors before work --------------------------------


def test_a_failing_case_is_one_line_and_the_others_go_on(model_files, ct, tmp_path, capsys):
    sitk.WriteImage(
        sitk.GetImageFromArray(np.zeros((600, 24, 3), np.int16)), str(tmp_path / 'thin.nii.gz'))
    out = tmp_path / 'out'
    code = _infer(model_files, tmp_path / 'thin.nii.gz', ct['nifti'], tmp_path / 'gone.nii.gz',
                  '--out-dir', out, '--slices', '6:8')
    cap = capsys.readouterr()
    assert code == 1
    errors = [ln for ln in cap.err.splitlines() if ln.startswith('error: ')]
    assert len(errors) == 2 and 'thin.nii.gz: slices of 3 x 24 px' in errors[0]
    assert 'gone.nii.gz: no such file' in errors[1]
    assert '1 case(s) done, 2 failed' in cap.out
    assert sorted(os.listdir(out)) == ['scan', 'summary.csv']
    # a range past the volume fails that case, naming the range
    assert _infer(model_files, ct['nifti'], '--out-dir', out, '--slices', '12:30') == 1
    assert "slices 12:30 are outside the volume's 16 slices" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _infer(model_files, ct['nifti'], '--out-dir', out, '--slices=-2:')
    assert 'START:END needs 0 <= START < END' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _infer(model_files, ct['png'], '--out-dir', out, '--spacing', 'nan', '--slice-interval',
               '2')
    assert '--spacing must be a finite positive number' in capsys.readouterr().err


def test_output_device_and_checkpoint_problems_stop_before_any_model_work(
        model_files, ct, tmp_path, capsys, monkeypatch):
    import acsdet.apis
    (tmp_path / 'afile').write_text('not a folder')

    def no_model(*a, **k):
        raise AssertionError('the model was built before the output folder was checked')

    with monkeypatch.context() as m:
        m.setattr(acsdet.apis, 'LesionDetector', no_model)
        assert _infer(model_files, ct['nifti'], '--out-dir', tmp_path / 'afile') == 2
    err = capsys.readouterr().err
    assert 'afile: it is a file, not a folder' in err and len(err.splitlines()) == 1
    bad_device = f'cuda:{torch.cuda.device_count()}'  # a device that does not exist, anywhere
    assert _infer(model_files, ct['nifti'], '--out-dir', tmp_path / 'o', '--device',
                  bad_device) == 2
    err = capsys.readouterr().err
    assert f'--device {bad_device}:' in err and len(err.splitlines()) == 1
    other = tmp_path / 'tsm.pth'
    ckpt = torch.load(model_files[1], weights_only=False)
    ckpt['meta'][ARCH_KEY]['backbone']['conv_mode'] = 'tsm'
    torch.save(ckpt, other)
    assert _infer((model_files[0], other), ct['nifti'], '--out-dir', tmp_path / 'o') == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and len(err) < 600
    assert "conv_mode='tsm'" in err and "conv_mode='acs'" in err and str(other) in err
    shrunk = {k: v for k, v in ckpt['state_dict'].items() if 'rpn' not in k}
    torch.save({'state_dict': shrunk}, tmp_path / 'partial.pth')
    with pytest.warns(UserWarning, match='no architecture record'):
        assert _infer((model_files[0], tmp_path / 'partial.pth'), ct['nifti'], '--out-dir',
                      tmp_path / 'o') == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and len(err) < 600 and 'keys missing (e.g. rpn_head' in err


def test_label_map_of_an_unevenly_spaced_series_says_how_it_relates(model_files, ct, tmp_path):
    folder = tmp_path / 'uneven'
    pos = -np.array([0, 2, 4, 6, 8, 10.36, 12.36, 14.36, 16.36, 18.36, 20.36, 22.36])
    write_dicom_series(ct['hu'][:12], SPACING, str(folder), positions=pos)
    out = tmp_path / 'out'
    assert _infer(model_files, folder, '--out-dir', out, '--slices', '4:6', '--save-masks') == 0
    saved = json.loads((out / 'uneven' / 'lesions.json').read_text())
    lm = saved['label_map']
    assert lm['file'] == 'lesions.nii.gz' and lm['uneven_slices'] is True
    img = sitk.ReadImage(str(out / 'uneven' / 'lesions.nii.gz'))
    # ITK's one spacing puts some slice off its true position: the file says by how much
    header_z = np.array([img.TransformIndexToPhysicalPoint((0, 0, k))[2] for k in range(12)])
    true_z = np.sort(pos)
    assert lm['max_slice_position_error_mm'] == pytest.approx(
        np.abs(header_z - true_z).max(), abs=2e-3)
    assert lm['max_slice_position_error_mm'] > 0.1
    assert any('uneven' in w for w in saved['warnings'])


def test_grouping_options_reach_lesions_json_and_bad_ones_are_refused(model_files, ct, tmp_path,
                                                                      capsys):
    out = tmp_path / 'out'
    assert _infer(model_files, ct['nifti'], '--out-dir', out, '--score-thr', '0.9', '--max-gap',
                  '0', '--depth-ratio', '0', '--link-contain', '0.6') == 0
    doc = json.loads((out / 'scan' / 'lesions.json').read_text())
    assert doc['grouping'] == dict(iou_thr=0.5, max_gap=0, depth_ratio=None, contain_thr=0.6)
    assert _infer(model_files, ct['nifti'], '--out-dir', out, '--max-gap', '-1') == 2
    assert 'grouping max_gap must be >= 0 slices, got -1' in capsys.readouterr().err


def test_infer_cli_keeps_going_past_a_bad_input(phantom, e2e_trained, tmp_path, capsys):
    from tools import infer
    ckpt = str(e2e_trained[0] / 'train' / f'epoch_{EPOCHS}.pth')
    good = phantom['files']['RAS']
    (tmp_path / 'bad.nii.gz').write_bytes(b'garbage')
    code = infer.main([
        CONFIG_DEMO, ckpt,
        str(tmp_path / 'bad.nii.gz'), good, '--out-dir',
        str(tmp_path / 'out'), '--slices', '20:23', '--save-masks', '--no-progress'
    ])
    out = capsys.readouterr()
    assert code == 1
    assert 'bad.nii.gz: unreadable' in out.err and '1 case(s) done, 1 failed' in out.out
    assert sorted(os.listdir(tmp_path / 'out')) == ['RAS', 'summary.csv']  # nothing partial for it
    assert {'lesions.json', 'lesions.csv', 'report.html',
            'lesions.nii.gz'} <= set(os.listdir(tmp_path / 'out' / 'RAS'))
    saved = json.loads((tmp_path / 'out' / 'RAS' / 'lesions.json').read_text())
    assert saved['slices_processed'] == [20, 23]
