"""A LeRobot dataset written by a background thread, episode by episode, so encoding never holds up the streams.

Frames queue without bound: none is dropped, a backlog only grows. A write that fails (a full disk, an I/O error)
fails that episode only: it is reported as FAILED and not saved, the dataset is reopened from what is committed on
disk at the next write, and the next episode is written as usual.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from robot_rl.data.lerobot import DatasetError, LeRobotWriter


class EpisodeWriter:
    def __init__(self, open_dataset: Callable[[], LeRobotWriter], logger):
        """`open_dataset` opens the dataset as committed on disk (info.json is the commit record; leftovers of a
        failed write go); `logger` has info / warning / error(message)."""
        self.open_dataset, self.logger = open_dataset, logger
        self.dataset: LeRobotWriter | None = open_dataset()   # writer thread after this; None after a failure
        self.lost: str | None = None   # writer thread: why the episode being written is lost (reported at its save)
        self.saved, self.failed = 0, 0  # writer thread
        self.jobs: queue.Queue = queue.Queue()
        self.idle = threading.Event()
        self.idle.set()
        self.thread = threading.Thread(target=self.loop, name="dataset-writer", daemon=True)
        self.thread.start()

    def add_frame(self, frame: dict) -> int:
        """Queue a frame (LeRobotWriter.add_frame's keyword arguments); returns the frames queued before it."""
        self.jobs.put(("frame", frame))
        return self.jobs.qsize()

    def save(self, episode: int, success: bool | None, summary: dict) -> None:
        self.jobs.put(("save", episode, success, summary))

    def discard(self, episode: int, reason: str) -> None:
        self.jobs.put(("discard", episode, reason))

    def done(self) -> bool:
        """Every queued job is written."""
        return self.jobs.empty() and self.idle.is_set()

    def close(self) -> None:
        self.jobs.put(("stop",))
        self.thread.join(timeout=60)
        if self.dataset is not None:
            self.dataset.finalize()

    # ---- writer thread ----------------------------------------------------------------------------------------
    def loop(self) -> None:
        while True:
            job = self.jobs.get()
            self.idle.clear()
            try:
                self.run(job)
            except (DatasetError, ValueError, OSError) as err:  # OSError: a full disk, an I/O error
                self.episode_failed(job, f"{type(err).__name__}: {err}")
            finally:
                if self.jobs.empty():
                    self.idle.set()
            if job[0] == "stop":
                return

    def episode_failed(self, job: tuple, reason: str) -> None:
        """The episode being written is lost, never the dataset: its frames go, and the dataset is reopened from
        disk at the next write (its own bookkeeping may be half-way through a save)."""
        if self.dataset is not None:
            self.dataset.discard_episode()
            self.dataset = None
        self.lost = self.lost or reason
        if job[0] == "save":
            self.report_failed(job[1])

    def report_failed(self, episode: int) -> None:
        self.failed += 1
        self.logger.error(f"episode {episode} FAILED, not saved: {self.lost}; the episodes saved before it are "
                          "intact")
        self.lost = None

    def writable(self) -> LeRobotWriter:
        if self.dataset is None:
            self.dataset = self.open_dataset()
        return self.dataset

    def run(self, job: tuple) -> None:
        kind = job[0]
        if kind == "frame":
            if self.lost is None:   # the rest of a lost episode is not written
                self.writable().add_frame(**job[1])
        elif kind == "discard":
            if self.dataset is not None:
                self.dataset.discard_episode()
            self.lost = None
            self.logger.info(f"episode {job[1]} discarded ({job[2]})")
        elif kind == "save":
            self.save_now(*job[1:])

    def save_now(self, episode: int, success: bool | None, summary: dict) -> None:
        if self.lost is not None:
            self.report_failed(episode)
            return
        frames = self.writable().pending_frames
        if frames == 0:
            self.logger.warning(f"episode {episode}: no frames recorded ({summary}); nothing saved")
            self.failed += 1
            return
        start = time.monotonic()
        index = self.dataset.save_episode(success=success)
        self.saved += 1
        extra = ", ".join(f"{k} {v}" for k, v in summary.items() if k != "frames" and v is not None)
        self.logger.info(f"episode {episode} -> dataset episode {index}: {frames} frames ({extra}), saved in "
                         f"{time.monotonic() - start:.2f} s; dataset {self.dataset.num_episodes} episodes, "
                         f"{self.dataset.info['total_frames']} frames")
