"""The launch process's child watcher: a node reaped by launch's own signal call keeps its real exit code."""
import asyncio
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from robot_rl.ros.child_watcher import ReapAwareChildWatcher, install_reap_aware_child_watcher

pytestmark = pytest.mark.skipif(not hasattr(asyncio, "set_child_watcher"), reason="Python without child watchers")


class PopenTransport:
    """What asyncio passes to the watcher's callback: a transport whose extra info holds its Popen."""

    def __init__(self, popen):
        self.popen = popen

    def get_extra_info(self, name):
        return self.popen if name == "subprocess" else None


def code_reported_for_a_child_reaped_elsewhere(watcher) -> int:
    popen = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    popen.wait()  # what Popen.send_signal's poll() does when the child has just ended

    async def report():
        reported = asyncio.get_running_loop().create_future()
        watcher.add_child_handler(popen.pid, lambda pid, code, transport: reported.set_result(code),
                                  PopenTransport(popen))
        return await asyncio.wait_for(reported, 30)
    return asyncio.run(report())


def test_a_child_reaped_by_poll_reports_the_code_poll_collected_where_asyncio_reports_255():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert code_reported_for_a_child_reaped_elsewhere(asyncio.ThreadedChildWatcher()) == 255
    assert code_reported_for_a_child_reaped_elsewhere(ReapAwareChildWatcher()) == 3


def ended(pid: int) -> bool:
    """A zombie not yet reaped, or reaped already."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.fixture
def installed():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        before = asyncio.get_child_watcher()
        install_reap_aware_child_watcher()
        yield asyncio.get_child_watcher()
        asyncio.set_child_watcher(before)


def test_subprocesses_report_exit_codes_and_signals_and_a_signal_right_after_a_clean_exit_is_still_clean(installed):
    assert isinstance(installed, ReapAwareChildWatcher)

    async def run():
        exits = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(7)")
        sleeps = await asyncio.create_subprocess_exec("sleep", "30")
        sleeps.send_signal(signal.SIGTERM)
        codes = [await exits.wait(), await sleeps.wait()]
        for _ in range(20):  # launch's SIGINT reaching a node that has just ended on the terminal's Ctrl-C
            child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
            while not ended(child.pid):
                await asyncio.sleep(0.001)
            try:
                child.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
            codes.append(await child.wait())
        return codes
    assert asyncio.run(run()) == [7, -signal.SIGTERM] + [0] * 20
