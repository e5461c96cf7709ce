"""utils/run_outputs: a run never writes over its inputs or a file acsdet did not write, and two
outputs of one run get two names."""
import json
import os

import pytest

from acsdet.utils.run_outputs import LEDGER, OutputRefused, RunOutputs


def _write(outputs, path, text, key=None):
    return outputs.write(str(path), lambda f: f.write(text), key=key)


def test_an_input_of_the_run_is_never_an_output(tmp_path):
    inp = tmp_path / 'gt.csv'
    inp.write_text('case,x1\n')
    (tmp_path / 'hard.csv').hardlink_to(inp)
    (tmp_path / 'soft.csv').symlink_to(inp)
    outputs = RunOutputs('t', [str(inp)])
    for name in ('gt.csv', 'hard.csv', 'soft.csv'):
        with pytest.raises(OutputRefused, match='is an input of this run'):
            outputs.claim(str(tmp_path / name))
    assert inp.read_text() == 'case,x1\n'


def test_a_file_acsdet_did_not_write_or_that_changed_is_refused(tmp_path):
    user = tmp_path / 'out.json'
    user.write_text('mine')
    with pytest.raises(OutputRefused, match='acsdet did not write it'):
        RunOutputs('t').claim(str(user))
    ours = tmp_path / 'ours.json'
    _write(RunOutputs('t'), ours, 'v1')
    _write(RunOutputs('t'), ours, 'v2')  # its own earlier output: replaced
    assert ours.read_text() == 'v2'
    assert json.loads((tmp_path / LEDGER).read_text())['files']['ours.json']['tool'] == 't'
    ours.write_text('edited by hand')
    with pytest.raises(OutputRefused, match='changed since acsdet wrote it'):
        RunOutputs('t').claim(str(ours))
    assert user.read_text() == 'mine' and ours.read_text() == 'edited by hand'


def test_two_outputs_of_one_name_get_two_stable_names(tmp_path):
    outputs = RunOutputs('t')
    pa = outputs.claim(str(tmp_path / 'CT.nii.gz'), 'a')
    pb = outputs.claim(str(tmp_path / 'CT.nii.gz'), 'b')
    assert pa == str(tmp_path / 'CT.nii.gz')
    assert pb != pa and pb.endswith('.nii.gz') and os.path.basename(pb).startswith('CT-')
    _write(outputs, pa, 'A', 'a')
    _write(outputs, pb, 'B', 'b')
    # a later run of b alone keeps the plain name for a, whose output it is
    assert RunOutputs('t').claim(str(tmp_path / 'CT.nii.gz'), 'b') == pb
    with pytest.raises(OutputRefused, match='another output of this run'):
        outputs = RunOutputs('t')
        outputs.claim(str(tmp_path / 'x.json'), 'k')
        outputs.claim(str(tmp_path / 'x.json'))  # no input key: no second name to give
