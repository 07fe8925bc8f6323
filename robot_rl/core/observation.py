"""Observation assembly from stamped streams: the newest sample at or before t* per stream, stale streams refused."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Observation:
    stamp: float
    values: dict[str, Any] = field(default_factory=dict)  # stream name -> sample


class StaleStream(RuntimeError):
    pass


class StreamBuffer:
    """A short history of (stamp, sample) per stream."""

    def __init__(self, depth: int = 30):
        self._streams: dict[str, deque] = {}
        self.depth = depth

    def add(self, name: str, stamp: float, sample: Any) -> None:
        stream = self._streams.setdefault(name, deque(maxlen=self.depth))
        if stream and stamp < stream[-1][0]:  # time went backwards (episode reset on sim time): start over
            stream.clear()
        stream.append((stamp, sample))

    def clear(self) -> None:
        self._streams.clear()

    def newest_stamp(self, name: str) -> float | None:
        stream = self._streams.get(name)
        return stream[-1][0] if stream else None

    def assemble(self, t_star: float, max_age: dict[str, float]) -> Observation:
        """Newest sample at or before t* for each stream in `max_age`; raises StaleStream naming the stream."""
        obs = Observation(stamp=t_star)
        for name, age in max_age.items():
            stream = self._streams.get(name)
            sample = None
            for stamp, value in reversed(stream or ()):
                if stamp <= t_star + 1e-9:
                    sample = (stamp, value)
                    break
            if sample is None:
                raise StaleStream(f"{name}: no sample at or before t*={t_star:.3f}")
            if t_star - sample[0] > age:
                raise StaleStream(f"{name}: newest sample is {t_star - sample[0]:.3f} s old (limit {age:.3f} s)")
            obs.values[name] = sample[1]
        return obs
