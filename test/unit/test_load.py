"""The CPU load harness (bench/load.py): its workers spin while the block runs, end with it, and never outlive a
parent that is SIGKILLed or their time limit."""
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.load import busy_workers
from robot_rl.ros.probe import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has finished
    except FileNotFoundError:
        return False


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        utime, stime = f.read().split(")")[-1].split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def test_workers_spin_during_the_block_and_end_with_it():
    with busy_workers(2, max_s=60) as pids:
        assert len(pids) == 2
        wait_for(lambda: all(cpu_seconds(p) > 0.2 for p in pids), 30, "the workers to burn CPU")
    assert not any(alive(p) for p in pids)
    with pytest.raises(ValueError):
        with busy_workers(1, max_s=0):
            pass


def test_workers_end_when_their_parent_is_killed_and_at_their_time_limit():
    parent = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom bench.load import busy_workers\n"
        "with busy_workers(1, max_s=60) as pids:\n    print(pids[0], flush=True)\n    time.sleep(60)\n")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    assert alive(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_for(lambda: not alive(worker), 10, "the orphaned worker to stop")
    start = time.monotonic()
    with busy_workers(1, max_s=1.0) as (pid,):
        wait_for(lambda: not alive(pid), 20, "the worker to stop at its time limit")
    assert time.monotonic() - start < 20
