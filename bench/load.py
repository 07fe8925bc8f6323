"""CPU load for benches and tests: `busy_workers(n)` runs n processes that spin on integer arithmetic while the caller's
block runs, so a graph can be measured on a machine that is busy with something else.

Each worker is a plain `python -c` process that stops by itself when its parent is gone (it checks its parent pid) or
after `max_s` seconds, so none outlives a SIGKILLed bench or a test that hangs; leaving the block ends them at once.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager

MAX_LOAD_S = 3600.0  # no worker spins longer than this, whatever the caller does (a bench level runs minutes)

_SPIN = """
import os, sys, time
parent, deadline, x = int(sys.argv[1]), time.monotonic() + float(sys.argv[2]), 1
while os.getppid() == parent and time.monotonic() < deadline:
    for _ in range(20000):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
"""


@contextmanager
def busy_workers(workers: int, max_s: float = MAX_LOAD_S):
    """Run `workers` busy processes (0: none) for the duration of the block, at most `max_s` seconds; yields their
    pids."""
    if workers < 0 or not 0 < max_s <= MAX_LOAD_S:
        raise ValueError(f"busy_workers: workers must be >= 0 and max_s in (0, {MAX_LOAD_S}], got {workers}, {max_s}")
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN, str(os.getpid()), str(max_s)],
                              stdin=subprocess.DEVNULL, start_new_session=True) for _ in range(workers)]
    try:
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def restrict_to_cores(cores: int) -> list[int]:
    """Pin this process (and what it starts from now on) to its first `cores` CPUs, so a bench on a big machine
    measures the 2-core case; returns the CPUs kept."""
    available = sorted(os.sched_getaffinity(0))
    if not 0 < cores <= len(available):
        raise ValueError(f"cannot restrict to {cores} cores: this process may use {len(available)}")
    os.sched_setaffinity(0, available[:cores])
    return available[:cores]
