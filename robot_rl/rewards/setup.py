"""A reward source's per-episode setup (DEG guidance from the episode's first frame) in a worker thread, so it never
blocks the reward node's loop, with a time limit: a thread cannot be stopped, so a setup past the limit is abandoned
with the worker's stack for the log, and the next episode gets a fresh worker."""
from __future__ import annotations

import sys
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable


class EpisodeSetup:
    def __init__(self, prepare: Callable, timeout_s: float):
        self.prepare, self.timeout_s = prepare, timeout_s
        self.worker = self._new_worker()
        self.future: Future | None = None
        self.since = 0.0  # monotonic time the running setup began

    @property
    def started(self) -> bool:
        return self.future is not None

    def start(self, *args) -> None:
        self.future = self.worker.submit(self.prepare, *args)
        self.since = time.monotonic()

    def forget(self) -> None:
        """A new episode: its setup starts with its first input."""
        self.future = None

    def poll(self) -> tuple[bool, str, str] | None:
        """None while the setup runs (or has not started); (True, "", "") once it is done; (False, why, detail) once
        it raised or ran past the limit (detail: the stuck worker's stack)."""
        if self.future is None:
            return None
        if not self.future.done():
            if time.monotonic() - self.since <= self.timeout_s:
                return None
            stack = self._worker_stack()
            self.worker.shutdown(wait=False, cancel_futures=True)
            self.worker, self.future = self._new_worker(), None
            return False, f"not ready after {self.timeout_s:g} s", f"; the worker is at\n{stack}"
        err, self.future = self.future.exception(), None
        return (True, "", "") if err is None else (False, str(err), "")

    def close(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _new_worker() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="guidance")

    def _worker_stack(self) -> str:
        frames = sys._current_frames()
        stacks = [f"{t.name}:\n{''.join(traceback.format_stack(frames[t.ident]))}" for t in self.worker._threads
                  if t.ident in frames]
        return "\n".join(stacks) or "(no worker thread)"
