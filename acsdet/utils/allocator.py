"""How a process gets its tensors' memory on the CPU: the settings that make whole-CT inference
up to 1.6x faster on this project's machine (docs/benchmarks.md, "Memory allocation").

torch's CPU allocator asks the C library for every tensor and gives it back when the tensor
dies. glibc serves blocks over 32 MiB (most of the volumetric pass's: a layer's window of slices)
straight from the kernel and returns them at once, so each new tensor is page-faulted and zeroed
again, 4 KiB at a time: 4.7 million faults for a 20-slice CT at 512 px, a fifth to a third of
the run in the kernel. Two settings, each measured:

- :func:`use_huge_pages`: torch's own ``THP_MEM_ALLOC_ENABLE``, 2 MiB transparent huge pages
  for tensors of 2 MiB or more (a thirteenth of the faults; no more memory). torch reads it once,
  at its first allocation, so it must be in the environment before torch starts: the ``acsdet
  infer`` command sets it unless the environment says otherwise.
- :func:`reuse_freed_memory`: glibc keeps freed memory (no ``mmap`` for large blocks, no trim)
  and hands it to the next tensor without a fault; the resident set stays at its high-water
  mark, with the heap's fragmentation: 15-65 % above the default's peak here. Opt-in:
  ``acsdet infer --reuse-memory``.
"""
import ctypes
import ctypes.util
import os
import platform
import sys
from typing import MutableMapping, Optional

#: torch's switch for transparent huge pages on CPU tensors (c10's ``alloc_cpu``).
HUGE_PAGES_ENV = 'THP_MEM_ALLOC_ENABLE'

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


def use_huge_pages(environ: Optional[MutableMapping[str, str]] = None) -> bool:
    """Ask torch for transparent huge pages (``THP_MEM_ALLOC_ENABLE=1``) unless ``environ``
    (default ``os.environ``) already sets it. Returns whether torch will use them: False when
    the variable says 0, or when torch was imported before (it read the variable then)."""
    environ = os.environ if environ is None else environ
    environ.setdefault(HUGE_PAGES_ENV, '1')
    if environ is os.environ and 'torch' in sys.modules:
        return False
    return environ[HUGE_PAGES_ENV].strip() not in ('', '0')


def reuse_freed_memory() -> bool:
    """Make glibc keep the memory tensors free and reuse it (``mallopt``: no ``mmap`` for large
    blocks, trim only above 2 GiB free at the heap's top), for the rest of the process. Returns
    False, changing nothing, where the C library is not glibc."""
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
