"""acsdet.utils.allocator: torch's huge-page switch set before torch starts, and glibc keeping
freed memory (checked in fresh interpreters: both act on the whole process)."""
import os
import platform
import subprocess
import sys

from acsdet.utils.allocator import HUGE_PAGES_ENV, use_huge_pages


def test_use_huge_pages_sets_the_switch_unless_the_environment_does():
    env = {}
    assert use_huge_pages(env) is True and env == {HUGE_PAGES_ENV: '1'}
    env = {HUGE_PAGES_ENV: '0'}
    assert use_huge_pages(env) is False and env[HUGE_PAGES_ENV] == '0'  # the user's word kept


def test_use_huge_pages_too_late_once_torch_is_imported(monkeypatch):
    import torch  # noqa: F401  (this process has torch: it read the switch already)
    monkeypatch.delenv(HUGE_PAGES_ENV, raising=False)
    assert use_huge_pages() is False
    assert os.environ[HUGE_PAGES_ENV] == '1'  # still set, for the processes it starts


def _run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != HUGE_PAGES_ENV}
    return subprocess.run([sys.executable, '-c', code],
                          check=True,
                          capture_output=True,
                          text=True,
                          env=env).stdout.strip()


def test_the_infer_command_sets_the_switch_before_torch():
    code = ('import sys\n'
            'from acsdet.cli import main\n'
            'try:\n    main(["infer", "--help"])\n'
            'except SystemExit:\n    pass\n'
            'import os\n'
            'print(os.environ.get("THP_MEM_ALLOC_ENABLE"), "torch" in sys.modules)')
    assert _run(code).splitlines()[-1] == '1 False'


# a 256 MiB block, freed: glibc returns it to the kernel at once by default (mmap), keeps it in
# the heap for the next block once told to reuse freed memory
_KEPT = """
import numpy as np
from acsdet.utils.allocator import reuse_freed_memory
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * 4096 / 2**20
ok = reuse_freed_memory() if {reuse} else True
a = np.ones(2**25)
before = rss()
del a
print(ok, round(before - rss()))
"""


def test_reuse_freed_memory_keeps_a_large_freed_block():
    if platform.libc_ver()[0] != 'glibc':  # nothing to set: says so, changes nothing
        assert _run(_KEPT.format(reuse=True)).split()[0] == 'False'
        return
    ok, given_back = _run(_KEPT.format(reuse=False)).split()
    assert ok == 'True' and int(given_back) > 200  # the default: back to the kernel
    ok, given_back = _run(_KEPT.format(reuse=True)).split()
    assert ok == 'True' and abs(int(given_back)) < 8  # kept, resident, for reuse
