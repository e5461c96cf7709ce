"""Shared helpers of the benchmarks: interleaved timing and peak memory on CPU or CUDA."""
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import torch


def machine() -> str:
    if torch.cuda.is_available():
        return f'{torch.cuda.get_device_name()} (torch {torch.__version__})'
    threads = torch.get_num_threads()
    return f'{platform.machine()} CPU, {threads} threads (torch {torch.__version__})'


def _sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def time_interleaved_ms(fns: dict, device, warmup=3, rounds=15) -> dict:
    """Median wall time (ms) of each ``fns[name]()``, run round-robin so that drifts of the
    machine's speed affect every candidate alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def _rss_mib(key: str) -> float:
    with open('/proc/self/status') as f:
        return int(re.search(key + r':\s+(\d+)', f.read()).group(1)) / 1024


def peak_mib(fn, device) -> float:
    """Peak memory (MiB) that one ``fn()`` needs above what is allocated before it.

    CUDA: the caching allocator's peak counter. CPU: the process's resident-set high-water mark
    (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``); run it in a fresh process with
    ``MALLOC_MMAP_THRESHOLD_`` set (see :func:`run_isolated`) so freed tensors leave the RSS.
    """
    fn()  # warm-up: one-time allocations (thread pools, kernels) are not the operator's
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    base = _rss_mib('VmRSS')
    fn()
    return _rss_mib('VmHWM') - base


def run_isolated(script: str, args) -> dict:
    """Run ``script args`` in a fresh interpreter (exact CPU peak memory); it prints one JSON
    line."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='65536', MALLOC_TRIM_THRESHOLD_='0')
    out = subprocess.run(
        [sys.executable, script] + [str(a) for a in args],
        env=env,
        check=True,
        capture_output=True,
        text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def markdown_table(header, rows) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
    return '\n'.join(lines)
