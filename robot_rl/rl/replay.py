"""Replay store of whole episodes, sampled as h-step chunk transitions for POCO's critic and actor.

Offline demonstrations stay in the store for the whole run (POCO keeps its offline data). A sample is
(s_t, A_t = a_t..a_{t+h-1}, R_h = Σ_{k<h} γ^k r_{t+k}, s_{t+h}, m) where m = 0 when the episode terminated inside
the chunk (no bootstrap). Steps past the end of an episode repeat its last action and earn no reward, so every
sampled chunk has the full length h.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Episode:
    states: np.ndarray      # (T+1, S): s_0..s_T (the last one is the state after the final action)
    actions: np.ndarray     # (T, D) normalised actions actually executed
    rewards: np.ndarray     # (T,)
    terminated: bool        # True when the episode ended in a terminal state (success), False on timeout
    interventions: np.ndarray | None = None  # (T,) bool: the human was in control
    source: str = "online"  # "offline" demonstrations or "online" rollouts

    def __post_init__(self):
        T = len(self.actions)
        if self.states.shape[0] != T + 1 or self.rewards.shape != (T,) or T == 0:
            raise ValueError(f"episode arrays disagree: states {self.states.shape}, actions {self.actions.shape}, "
                             f"rewards {self.rewards.shape}")
        if self.interventions is None:
            self.interventions = np.zeros(T, dtype=bool)


@dataclass
class ChunkBatch:
    states: np.ndarray       # (B, S)
    actions: np.ndarray      # (B, h, D)
    returns: np.ndarray      # (B,) R_h
    next_states: np.ndarray  # (B, S)
    bootstrap: np.ndarray    # (B,) 1 - terminated-within-chunk


class ReplayStore:
    def __init__(self, horizon: int, gamma: float, capacity_steps: int = 2_000_000):
        self.h = horizon
        self.gamma = gamma
        self.capacity_steps = capacity_steps
        self.episodes: list[Episode] = []
        self._starts = np.zeros(0, dtype=np.int64)  # cumulative step offsets for uniform sampling over steps
        self._lock = threading.Lock()  # the learner node adds from the ROS thread while its worker samples

    def __len__(self) -> int:
        return int(sum(len(e.actions) for e in self.episodes))

    def add(self, episode: Episode) -> None:
        with self._lock:
            self.episodes.append(episode)
            while len(self) > self.capacity_steps:  # evict the oldest online episode; offline data is kept
                online = [i for i, e in enumerate(self.episodes) if e.source != "offline"]
                if not online:
                    break
                self.episodes.pop(online[0])
            self._starts = np.cumsum([0] + [len(e.actions) for e in self.episodes])

    def sample(self, batch_size: int, rng: np.random.Generator) -> ChunkBatch:
        with self._lock:
            starts, episodes = self._starts, list(self.episodes)
        flat = rng.integers(0, starts[-1], size=batch_size)
        which = np.searchsorted(starts, flat, side="right") - 1
        out = [self._chunk(episodes[e], int(flat[i] - starts[e])) for i, e in enumerate(which)]
        return ChunkBatch(*(np.stack(x) for x in zip(*out)))

    def _chunk(self, ep: Episode, t: int):
        T = len(ep.actions)
        idx = np.minimum(np.arange(t, t + self.h), T - 1)
        valid = np.arange(t, t + self.h) < T
        discounts = self.gamma ** np.arange(self.h)
        R_h = float(np.sum(discounts * ep.rewards[idx] * valid))
        end = min(t + self.h, T)
        terminated_inside = ep.terminated and t + self.h >= T
        return (ep.states[t].astype(np.float32), ep.actions[idx].astype(np.float32), np.float32(R_h),
                ep.states[end].astype(np.float32), np.float32(0.0 if terminated_inside else 1.0))


def save_episode(episode: Episode, directory: Path, index: int) -> Path:
    """Write one episode atomically as an .npz (plain arrays, no pickle): a crash never leaves half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"episode_{index:06d}.npz"
    tmp = directory / f".episode_{index:06d}.tmp.npz"
    np.savez(tmp, states=episode.states, actions=episode.actions, rewards=episode.rewards,
             terminated=np.bool_(episode.terminated), interventions=episode.interventions,
             source=np.str_(episode.source))
    os.replace(tmp, final)
    return final


def load_episodes(directory: Path) -> list[Episode]:
    """Every complete episode saved in `directory`, in order (temporary files of an interrupted write are skipped)."""
    episodes = []
    for path in sorted(directory.glob("episode_*.npz")):
        with np.load(path, allow_pickle=False) as z:
            episodes.append(Episode(z["states"], z["actions"], z["rewards"], bool(z["terminated"]),
                                    z["interventions"], str(z["source"])))
    return episodes
