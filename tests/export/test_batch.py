"""Batch runs of tools/infer.py: every CT series of a study (--list, --all-series), a CSV
manifest, inputs with one base name, DICOM outputs asked of a non-DICOM input, summary.csv, and a
run killed in the middle of a case resumed with --skip-done."""
import csv
import json
import os
import os.path as osp
import subprocess
import sys
import textwrap

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from acsdet.export.case_folder import MANIFEST
from acsdet.testing.ct_files import head_to_feet_phantom, lps_image, write_study

from ..helpers import ROOT

SPACING = (2.0, 0.8, 0.8)


@pytest.fixture(scope='module')
def hu():
    return head_to_feet_phantom(10, 48)[0]


def _infer(model_files, *args):
    from tools import infer
    return infer.main([str(a) for a in model_files] + [str(a) for a in args] + ['--no-progress'])


def _summary(out):
    with open(osp.join(out, 'summary.csv'), newline='') as f:
        return list(csv.DictReader(f))


def test_every_series_of_a_study_is_listed_and_run(model_files, hu, tmp_path, capsys):
    from tools import infer
    study = write_study(str(tmp_path / 'PAT001'), hu, SPACING)
    assert infer.main(['--list', study['root']]) == 0
    listing = capsys.readouterr().out
    assert f'{study["root"]}: 2 CT series, 4 in all' in listing
    assert study['thin'] in listing and 'left out: secondary capture' in listing
    out = tmp_path / 'out'
    assert _infer(model_files, study['root'], '--out-dir', out, '--slices', '1:3') == 1
    err = capsys.readouterr().err
    assert 'PAT001: holds 2 CT series, pick one with --series' in err
    assert infer.main([
        *map(str, model_files), study['root'], '--all-series', '--out-dir',
        str(out), '--slices', '1:3', '--score-thr', '0', '--output-type', 'dicom-sr'
    ]) == 0
    bar = capsys.readouterr().err  # the progress bar counts CTs, with the time left
    line = bar.replace('\r', '\n').splitlines()
    done = [ln for ln in line if ln.startswith('CTs: 100%')][-1]  # "... 2/2 [00:04<00:00, ...]"
    assert ' 2/2 [' in done and '<00:00' in done and ('s/CT' in done or 'CT/s' in done)
    rows = _summary(out)  # the first run's failure is kept: its row is its only record
    assert [(r['case'], r['series'], r['status'])
            for r in rows] == [('PAT001', '', 'failed'), ('PAT001_s2', study['thin'], 'done'),
                               ('PAT001_s3', study['thick'], 'done')]
    for r in rows[1:]:
        with open(osp.join(r['folder'], MANIFEST)) as f:
            assert json.load(f)['input'] == f'{osp.realpath(study["root"])}#{r["series"]}'
        with open(osp.join(r['folder'], 'lesions.json')) as f:
            js = json.load(f)
        assert r['series'] in js['source'] and int(r['lesions']) == len(js['lesions']) > 0
        seg = pydicom.dcmread(osp.join(r['folder'], 'lesions_seg.dcm'), stop_before_pixels=True)
        sr = pydicom.dcmread(osp.join(r['folder'], 'lesions_sr.dcm'), stop_before_pixels=True)
        assert len(seg.SegmentSequence) == len(js['lesions'])  # one segment a lesion
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == r['series']
        assert sr.SOPInstanceUID == js['dicom']['sr']['sop_instance_uid']


def test_a_manifest_runs_every_row_and_one_bad_case_never_stops_the_others(
        model_files, hu, tmp_path, capsys):
    for d in ('a', 'b'):
        os.makedirs(tmp_path / d)
        sitk.WriteImage(lps_image(hu, SPACING), str(tmp_path / d / 'scan.nii.gz'))
    study = write_study(str(tmp_path / 'PAT001'), hu, SPACING)
    manifest = tmp_path / 'cases.csv'
    manifest.write_text('path,series,case\n'
                        'a/scan.nii.gz,,\n'
                        'b/scan.nii.gz,,\n'
                        f'PAT001,{study["thick"]},patient1\n')
    out = tmp_path / 'out'
    code = _infer(model_files, '--manifest', manifest, '--out-dir', out, '--slices', '1:3',
                  '--output-type', 'dicom-seg')
    cap = capsys.readouterr()
    assert code == 1
    errors = [ln for ln in cap.err.splitlines() if ln.startswith('error: ')]
    assert len(errors) == 2 and all('scan.nii.gz: DICOM SEG / SR outputs' in e for e in errors)
    rows = _summary(out)
    assert [(r['case'], r['status']) for r in rows] == [('scan', 'failed'), ('scan', 'failed'),
                                                        ('patient1', 'done')]
    assert [r['error'] for r in rows[:2]] == [e[len('error: '):] for e in errors]
    with open(out / 'patient1' / MANIFEST) as f:
        assert json.load(f)['outputs'] == ['json', 'dicom-seg']
    assert _infer(model_files, '--manifest', manifest, '--out-dir', out, '--slices', '1:3') == 0
    rows = _summary(out)
    names = [r['case'] for r in rows]
    assert names[0] == 'scan' and names[1].startswith('scan-') and names[2] == 'patient1'
    assert all(r['status'] == 'done' for r in rows)
    for r, d in zip(rows, 'ab'):
        with open(osp.join(r['folder'], MANIFEST)) as f:
            assert json.load(f)['input'] == osp.realpath(tmp_path / d / 'scan.nii.gz')
    (out / 'summary.csv').write_text('my,own\nnotes,here\n')  # a user's file: never replaced
    assert _infer(model_files, '--manifest', manifest, '--out-dir', out) == 2
    assert 'summary.csv exists and is not a summary acsdet wrote' in capsys.readouterr().err
    assert (out / 'summary.csv').read_text() == 'my,own\nnotes,here\n'
    (tmp_path / 'bad.csv').write_text('file\nx.nii.gz\n')
    assert _infer(model_files, '--manifest', tmp_path / 'bad.csv', '--out-dir', out) == 2
    assert 'bad.csv: a manifest is a CSV with a header row holding a "path" column' in (
        capsys.readouterr().err)


KILLER = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import acsdet.export.case_writer as report
    real, calls = report.commit_case, []

    def commit_then_die(tmp, *args, **kwargs):
        calls.append(tmp)
        if len(calls) == 2:  # killed with the second case written but not yet in place
            os.kill(os.getpid(), signal.SIGKILL)
        return real(tmp, *args, **kwargs)

    report.commit_case = commit_then_die
    from tools import infer
    sys.exit(infer.main(sys.argv[1:]))
''')


def test_a_batch_killed_in_a_case_resumes_with_skip_done(model_files, hu, tmp_path):
    inputs = []
    for name in ('one', 'two', 'three'):
        inputs.append(str(tmp_path / f'{name}.nii.gz'))
        sitk.WriteImage(lps_image(hu, SPACING), inputs[-1])
    out = tmp_path / 'out'
    args = [
        *map(str, model_files), *inputs, '--out-dir',
        str(out), '--slices', '1:3', '--no-progress'
    ]
    killer = tmp_path / 'killer.py'
    killer.write_text(KILLER.format(root=ROOT))
    run = subprocess.run([sys.executable, str(killer), *args], capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-2000:]
    left = sorted(os.listdir(out))
    assert 'one' in left and 'two' not in left and 'three' not in left
    assert any(n.startswith('.two.') for n in left)  # the killed case's temporary
    assert [(r['case'], r['status']) for r in _summary(out)] == [('one', 'done')]
    stamp = os.stat(out / 'one' / MANIFEST).st_mtime_ns
    from tools import infer
    assert infer.main(args + ['--skip-done']) == 0
    assert [(r['case'], r['status']) for r in _summary(out)] == [('one', 'skipped'),
                                                                 ('two', 'done'), ('three', 'done')]
    assert os.stat(out / 'one' / MANIFEST).st_mtime_ns == stamp  # not run again
    assert sorted(os.listdir(out)) == ['one', 'summary.csv', 'three', 'two']  # temporaries gone
    # a case done without an output asked for now is not done
    assert infer.main(args + ['--skip-done', '--output-type', 'nifti']) == 0
    assert [r['status'] for r in _summary(out)] == ['done'] * 3
    assert all(osp.isfile(out / n / 'lesions.nii.gz') for n in ('one', 'two', 'three'))
    # issue 34 item 9: done only when made the same way from the same input
    nifti = args + ['--skip-done', '--output-type', 'nifti']
    assert infer.main(nifti) == 0
    assert [r['status'] for r in _summary(out)] == ['skipped'] * 3
    for changed in (['--score-thr', '0.4'], ['--slices', '0:3'], ['--max-gap', '2']):
        assert infer.main(nifti + changed) == 0
        assert [r['status'] for r in _summary(out)] == ['done'] * 3, changed
        assert infer.main(nifti) == 0  # and back to the first settings: made anew
    big = np.zeros((12, 40, 40), np.int16)  # another CT at the path of "two"
    sitk.WriteImage(lps_image(big, SPACING), inputs[1])
    assert infer.main(nifti) == 0
    assert [r['status'] for r in _summary(out)] == ['skipped', 'done', 'skipped']


def _record_rows(out_dir, prefix, n):
    from acsdet.export.batch import Summary
    keys = [f'/data/{prefix}{i}' for i in range(n)]
    summary = Summary(out_dir, keys)
    for k in keys:
        summary.record(k, case=osp.basename(k), input=k, status='done')


def test_summary_keeps_every_cases_latest_row_across_and_between_concurrent_runs(tmp_path):
    """Issue 34 item 2: rows merge by input key under the folder's lock; a later run replaces
    its own cases' rows only."""
    import multiprocessing as mp

    from acsdet.export.batch import Summary
    out = str(tmp_path)
    first = Summary(out, ['/data/x', '/data/y'])
    first.record('/data/x', case='x', input='/data/x', status='failed', error='bad header')
    first.record('/data/y', case='y', input='/data/y', status='done')
    Summary(out, ['/data/y']).record('/data/y', case='y', input='/data/y', status='skipped')
    assert [(r['case'], r['status'], r['error'])
            for r in _summary(out)] == [('x', 'failed', 'bad header'), ('y', 'skipped', '')]
    procs = [mp.get_context('fork').Process(target=_record_rows, args=(out, p, 40)) for p in 'ab']
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    rows = _summary(out)
    assert len(rows) == 82 and len({r['key'] for r in rows}) == 82
    assert [r['case'] for r in rows if r['case'].startswith('a')] == [f'a{i}' for i in range(40)]
