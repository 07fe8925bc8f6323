"""Chunk executor: turns action chunks into one action per control tick, on the robot's clock.

Timing rule (diffusion_policy's, in the contract's terms): point i of a chunk is the set-point to reach at
t_i = stamp + (i+1)*dt, so it is *issued* at the tick nearest to t_i - dt = stamp + i*dt.
- On arrival, points whose issue time has already passed are dropped (the inference latency is absorbed by skipping
  stale steps, not by pausing the robot); the unexecuted tail of the previous chunk is replaced.
- Optional temporal ensembling at the seam: where old and new chunks both hold a point for the same tick, the
  executed value is w*new + (1-w)*old.
- Each tick returns the newest due point. When nothing new is due the previous command is held; when nothing new has
  come for `watchdog_s` the tick reports `watchdog` so the caller holds position and can say so.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from robot_rl.core.types import ActionChunk


@dataclass
class ScheduledPoint:
    issue_time: float
    values: np.ndarray
    names: tuple[str, ...]
    source: str


@dataclass
class Tick:
    """What to command this tick. `point` is None when the caller must hold ('idle' or 'watchdog')."""

    status: str  # "new" | "idle" | "watchdog"
    point: ScheduledPoint | None = None
    lateness: float = 0.0  # now - issue_time of the executed point (jitter against the schedule)


@dataclass
class ExecutorStats:
    chunks: int = 0
    points_dropped_late: int = 0
    points_skipped: int = 0
    points_executed: int = 0
    ticks_idle: int = 0
    ticks_watchdog: int = 0
    lateness: deque = field(default_factory=lambda: deque(maxlen=1000))  # recent executed points, seconds


class ChunkExecutor:
    def __init__(self, period: float, watchdog_s: float, ensemble_weight: float | None = None):
        if period <= 0 or watchdog_s <= 0:
            raise ValueError(f"period ({period}) and watchdog_s ({watchdog_s}) must be positive")
        if ensemble_weight is not None and not 0.0 < ensemble_weight <= 1.0:
            raise ValueError(f"ensemble_weight must lie in (0, 1], got {ensemble_weight}")
        self.period = period
        self.watchdog_s = watchdog_s
        self.ensemble_weight = ensemble_weight
        self.queue: list[ScheduledPoint] = []
        self.last_new_time: float | None = None
        self.executed_since_reset = False  # a watchdog before the first point is a slow start, after it a silence
        self.stats = ExecutorStats()

    def reset(self, now: float) -> None:
        """Forget all pending points (episode reset, e-stop); the watchdog counts from `now`."""
        self.queue.clear()
        self.last_new_time = now
        self.executed_since_reset = False

    def pending(self) -> int:
        return len(self.queue)

    def submit(self, chunk: ActionChunk, now: float) -> int:
        """Schedule a (validated) chunk; returns how many of its points remain after dropping the late ones."""
        half = 0.5 * self.period
        fresh = []
        for i, values in enumerate(np.asarray(chunk.points, dtype=float)):
            issue_time = chunk.stamp + i * chunk.dt
            if issue_time < now - half:
                self.stats.points_dropped_late += 1
                continue
            fresh.append(ScheduledPoint(issue_time, values, tuple(chunk.names), chunk.source))
        if self.ensemble_weight is not None:
            self._blend_with_pending(fresh)
        self.queue = fresh  # replaces the unexecuted tail
        self.stats.chunks += 1
        return len(fresh)

    def _blend_with_pending(self, fresh: list[ScheduledPoint]) -> None:
        w = self.ensemble_weight
        half = 0.5 * self.period
        for new in fresh:
            for old in self.queue:
                if old.names == new.names and abs(old.issue_time - new.issue_time) < half:
                    new.values = w * new.values + (1.0 - w) * old.values
                    break

    def tick(self, now: float) -> Tick:
        if self.last_new_time is None:
            self.last_new_time = now
        half = 0.5 * self.period
        due = [p for p in self.queue if p.issue_time <= now + half]
        if due:
            self.queue = self.queue[len(due):]
            self.stats.points_skipped += len(due) - 1
            self.stats.points_executed += 1
            self.executed_since_reset = True
            point = due[-1]
            self.last_new_time = now
            lateness = now - point.issue_time
            self.stats.lateness.append(lateness)
            return Tick("new", point, lateness)
        if now - self.last_new_time >= self.watchdog_s - 1e-9:
            self.stats.ticks_watchdog += 1
            return Tick("watchdog")
        self.stats.ticks_idle += 1
        return Tick("idle")
