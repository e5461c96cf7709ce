"""utils/files: atomic writes, owners of temporaries (only a gone process's are stale)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from acsdet.utils import atomic_write, owner_is_dead, owner_tag, stale_temporaries, temporary_name


def _gone_pid() -> int:
    return int(
        subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                       capture_output=True,
                       text=True).stdout)


def test_owner_tags_tell_gone_processes_from_live_and_foreign_ones():
    assert not owner_is_dead(owner_tag())  # this process
    host = owner_tag().split('-')[0]
    assert owner_is_dead(f'{host}-{_gone_pid()}')
    assert not owner_is_dead(f'00000000-{_gone_pid()}')  # another host: unknown, kept
    assert not owner_is_dead(None) and not owner_is_dead('garbage')


def test_stale_temporaries_are_only_those_of_gone_or_unknown_writers(tmp_path):
    host = owner_tag().split('-')[0]
    hexa = 'ab' * 16
    names = {
        f'out.json.{host}-{_gone_pid()}.{hexa}.tmp': True,  # a killed run's
        f'out.json.{hexa}.tmp': True,  # written before temporaries had owners
        f'out.json.{host}-{_gone_pid()}.{hexa}.old': True,
        os.path.basename(temporary_name(str(tmp_path / 'out.json'))): False,  # a live writer's
        f'out.json.00000000-1.{hexa}.tmp': False,  # another host's
        f'out.json.v2.{hexa}.tmp': False,  # another file's name
        'out.json': False,
    }
    for n in names:
        (tmp_path / n).write_text('')
    found = {os.path.basename(p) for p in stale_temporaries(str(tmp_path), 'out.json.')}
    assert found == {n for n, stale in names.items() if stale}


def test_atomic_write_replaces_a_link_and_leaves_its_target(tmp_path):
    target = tmp_path / 'precious.txt'
    target.write_text('keep')
    (tmp_path / 'out.txt').symlink_to(target)
    atomic_write(str(tmp_path / 'out.txt'), lambda f: f.write('new'))
    assert (tmp_path / 'out.txt').read_text() == 'new' and not (tmp_path / 'out.txt').is_symlink()
    assert target.read_text() == 'keep' and sorted(
        os.listdir(tmp_path)) == ['out.txt', 'precious.txt']
    with pytest.raises(ZeroDivisionError):  # a failing writer leaves the old file, no temporary
        atomic_write(str(tmp_path / 'out.txt'), lambda f: 1 / 0)
    assert (tmp_path / 'out.txt').read_text() == 'new' and len(os.listdir(tmp_path)) == 2


def test_atomic_save_by_name_keeps_the_old_file_when_the_writer_fails(tmp_path):
    import SimpleITK as sitk

    from acsdet.utils import atomic_save
    out = tmp_path / 'ct.nii.gz'
    img = sitk.GetImageFromArray(np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    atomic_save(str(out), lambda tmp: sitk.WriteImage(img, tmp, True), '.nii.gz')
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(out))),
        np.arange(24).reshape(2, 3, 4))
    good = out.read_bytes()

    def half_then_fail(tmp):
        with open(tmp, 'wb') as f:
            f.write(good[:10])
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_save(str(out), half_then_fail, '.nii.gz')
    assert out.read_bytes() == good and os.listdir(tmp_path) == ['ct.nii.gz']


def test_another_hosts_temporaries_are_stale_once_untouched_for_a_day(tmp_path):
    """Issue 34 item 4: no host sees another's processes, so a temporary of another host's
    process is stale when it has not changed for FOREIGN_STALE_SECONDS (24 h)."""
    import time

    from acsdet.utils.files import FOREIGN_STALE_SECONDS
    hexa = 'cd' * 16
    fresh, old = (tmp_path / f'out.json.0000abcd-7.{hexa}.tmp'), (
        tmp_path / f'out.json.0000abcd-8.{hexa}.tmp')
    fresh.write_text('')
    old.write_text('')
    t = time.time() - FOREIGN_STALE_SECONDS - 60
    os.utime(old, (t, t))
    assert stale_temporaries(str(tmp_path), 'out.json.') == [str(old)]
