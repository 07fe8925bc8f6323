"""Replay store of whole episodes, sampled as h-step chunk transitions for POCO's critic and actor.

Offline demonstrations stay in the store for the whole run (POCO keeps its offline data). A sample is
(s_t, A_t = a_t..a_{t+h-1}, R_h = Σ_{k<h} γ^k r_{t+k}, s_{t+h}, m) where m = 0 when the episode terminated inside
the chunk (no bootstrap). Steps past the end of an episode earn no reward and take the episode's hold action
(Episode.hold_action), so every sampled chunk has the full length h. The hold is what robot_rl.data.lerobot's
chunk_dataset pads demonstrations with, core.types.holding_action, in the store's normalised units
(`normalised_hold`): zero EE deltas with the gripper width kept for an end-effector delta action space (a sim episode
ends at success, often mid-motion: repeating its last delta would teach "keep moving"), the last action again for an
absolute action space such as joint targets. An episode built without its action names repeats its last action.

Image observations (for camera policies) travel beside the states: {camera: (T+1, H, W, 3) uint8} per episode, sampled
as {camera: (B, H, W, 3)} for s_t and s_{t+h}.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from robot_rl.core.types import holding_action

if TYPE_CHECKING:
    from robot_rl.policies.normalizer import Normalizer


@dataclass
class Episode:
    states: np.ndarray      # (T+1, S): s_0..s_T (the last one is the state after the final action)
    actions: np.ndarray     # (T, D) normalised actions actually executed
    rewards: np.ndarray     # (T,)
    terminated: bool        # True when the episode ended in a terminal state (no bootstrap), False on a time-out
    interventions: np.ndarray | None = None  # (T,) bool: the human was in control
    source: str = "online"  # "offline" demonstrations or "online" rollouts
    images: dict[str, np.ndarray] = field(default_factory=dict)  # {camera: (T+1, H, W, 3) uint8}, camera policies
    success: bool | None = None  # None: `terminated` means success (sim tasks, recorded data end only on success)
    # (D,) the normalised action that pads a chunk past the end: `normalised_hold` of the last action, which the
    # constructors that know the action names and normaliser pass; None: the last action repeated (right for an
    # absolute action space, wrong for EE deltas)
    hold_action: np.ndarray | None = None

    @property
    def succeeded(self) -> bool:
        return self.terminated if self.success is None else self.success

    def __post_init__(self):
        T = len(self.actions)
        if self.states.shape[0] != T + 1 or self.rewards.shape != (T,) or T == 0:
            raise ValueError(f"episode arrays disagree: states {self.states.shape}, actions {self.actions.shape}, "
                             f"rewards {self.rewards.shape}")
        for camera, frames in self.images.items():
            if frames.shape[0] != T + 1 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                raise ValueError(f"episode images of camera {camera!r} are {frames.dtype} {frames.shape}; "
                                 f"expected uint8 ({T + 1}, H, W, 3)")
        if self.interventions is None:
            self.interventions = np.zeros(T, dtype=bool)
        if self.hold_action is None:
            self.hold_action = self.actions[-1].copy()
        if np.shape(self.hold_action) != self.actions.shape[1:]:
            raise ValueError(f"episode hold action {np.shape(self.hold_action)} differs from its actions' "
                             f"{self.actions.shape[1:]}")


def normalised_hold(names: tuple[str, ...] | list[str], normalizer: Normalizer,
                    last_action: np.ndarray) -> np.ndarray:
    """The normalised action that holds the arm after the normalised `last_action` (named `names`): core.types.
    holding_action of it in raw units, normalised again. EE deltas: the normalised zero delta with the gripper kept;
    joint targets (or any other space, taken as absolute): `last_action` itself."""
    device = normalizer.action_min.device
    raw = normalizer.unnormalize_actions(torch.as_tensor(np.asarray(last_action, np.float32), device=device))
    hold = holding_action(names, raw.cpu().numpy())
    return normalizer.normalize_actions(torch.as_tensor(hold, device=device)).cpu().numpy().astype(np.float32)


@dataclass
class ChunkBatch:
    states: np.ndarray       # (B, S)
    actions: np.ndarray      # (B, h, D)
    returns: np.ndarray      # (B,) R_h
    next_states: np.ndarray  # (B, S)
    bootstrap: np.ndarray    # (B,) 1 - terminated-within-chunk
    expert: np.ndarray       # (B,) 1 for a demonstration, a human intervention or a chunk of a successful episode
    images: dict[str, np.ndarray] = field(default_factory=dict)       # {camera: (B, H, W, 3) uint8} at s
    next_images: dict[str, np.ndarray] = field(default_factory=dict)  # the same at s'


@dataclass
class _Flat:
    """Every stored episode's low-dimensional arrays laid end to end (a copy beside the episodes; images are not
    copied), so a batch is gathered by array indexing: 80x faster than building it sample by sample."""
    starts: np.ndarray        # (E+1,) cumulative step offsets: episode e owns steps starts[e]..starts[e+1]-1
    states: np.ndarray        # (steps + E, S): episode e's T+1 states from starts[e] + e
    actions: np.ndarray       # (steps, D)
    rewards: np.ndarray       # (steps,)
    terminated: np.ndarray    # (E,) bool
    expert: np.ndarray        # (steps,) bool: the step's chunk counts as expert data (see ChunkBatch.expert)
    hold: np.ndarray          # (E, D) each episode's hold action, taken by the steps past its end

    @classmethod
    def of(cls, episodes: list[Episode]) -> _Flat:
        lengths = [len(e.actions) for e in episodes]
        return cls(np.cumsum([0] + lengths), np.concatenate([e.states for e in episodes]).astype(np.float32),
                   np.concatenate([e.actions for e in episodes]).astype(np.float32),
                   np.concatenate([e.rewards for e in episodes]), np.array([e.terminated for e in episodes]),
                   np.concatenate([e.interventions | (e.source == "offline" or e.succeeded) for e in episodes]),
                   np.stack([e.hold_action for e in episodes]).astype(np.float32))


class ReplayStore:
    def __init__(self, horizon: int, gamma: float, capacity_steps: int = 2_000_000):
        self.h = horizon
        self.gamma = gamma
        self.capacity_steps = capacity_steps
        self.episodes: list[Episode] = []
        self._flat: _Flat | None = None  # built at the first sample after a change
        self._lock = threading.Lock()  # the learner node adds from the ROS thread while its worker samples

    def __len__(self) -> int:
        return int(sum(len(e.actions) for e in self.episodes))

    def add(self, episode: Episode) -> None:
        """Store an episode; one whose state size or cameras differ from the stored ones is refused (ValueError)."""
        if self.episodes:
            first = self.episodes[0]
            schema = [(e.states.shape[1:], e.actions.shape[1:], sorted(e.images)) for e in (episode, first)]
            if schema[0] != schema[1]:
                raise ValueError(f"episode schema (state, action, cameras) {schema[0]} differs from the store's "
                                 f"{schema[1]}")
        with self._lock:
            self.episodes.append(episode)
            while len(self) > self.capacity_steps:  # evict the oldest online episode; offline data is kept
                online = [i for i, e in enumerate(self.episodes) if e.source != "offline"]
                if not online:
                    break
                self.episodes.pop(online[0])
            self._flat = None

    def sample(self, batch_size: int, rng: np.random.Generator) -> ChunkBatch:
        """Chunks at steps drawn uniformly over every stored step."""
        flat, episodes = self._snapshot()
        return self._gather(flat, episodes, rng.integers(0, flat.starts[-1], size=batch_size))

    def chunks_at(self, steps) -> ChunkBatch:
        """The chunks at these stored steps (every episode's steps counted end to end, in the order stored)."""
        flat, episodes = self._snapshot()
        return self._gather(flat, episodes, np.asarray(steps, dtype=np.int64))

    def _snapshot(self) -> tuple[_Flat, list[Episode]]:
        with self._lock:
            if not self.episodes:
                raise ValueError("the replay store is empty: nothing to sample")
            if self._flat is None:
                self._flat = _Flat.of(self.episodes)
            return self._flat, list(self.episodes)

    def _gather(self, flat: _Flat, episodes: list[Episode], step: np.ndarray) -> ChunkBatch:
        """(s_t, A_t, R_h, s_{t+h}, m, expert) as the module docstring defines them."""
        e = np.searchsorted(flat.starts, step, side="right") - 1
        t, T = step - flat.starts[e], np.diff(flat.starts)[e]
        ahead = t[:, None] + np.arange(self.h)                          # (B, h): t..t+h-1
        valid = ahead < T[:, None]                                      # steps past the end earn nothing
        acted = flat.starts[e][:, None] + np.minimum(ahead, T[:, None] - 1)
        actions = np.where(valid[:, :, None], flat.actions[acted], flat.hold[e][:, None, :])  # ... and hold
        returns = np.sum(self.gamma ** np.arange(self.h) * flat.rewards[acted] * valid, axis=1)
        end = np.minimum(t + self.h, T)
        terminated_inside = flat.terminated[e] & (t + self.h >= T)
        first_state = flat.starts[e] + e
        batch = ChunkBatch(flat.states[first_state + t], actions, returns.astype(np.float32),
                           flat.states[first_state + end], np.where(terminated_inside, 0.0, 1.0).astype(np.float32),
                           flat.expert[step].astype(np.float32))
        for camera in episodes[0].images:
            batch.images[camera] = np.stack([episodes[i].images[camera][j] for i, j in zip(e, t)])
            batch.next_images[camera] = np.stack([episodes[i].images[camera][j] for i, j in zip(e, end)])
        return batch


def random_store(horizon: int, gamma: float, state_dim: int, action_dim: int, episodes: int, steps: int,
                 seed: int) -> ReplayStore:
    """Episodes of random numbers (states, normalised actions in [-1, 1], rewards, terminal flags): an update costs
    the same on them as on real data, so the learner's timing benches and checks need no demonstrations."""
    rng = np.random.default_rng(seed)
    store = ReplayStore(horizon, gamma)
    for _ in range(episodes):
        store.add(Episode(states=rng.normal(size=(steps + 1, state_dim)).astype(np.float32),
                          actions=rng.uniform(-1, 1, (steps, action_dim)).astype(np.float32),
                          rewards=rng.normal(size=steps).astype(np.float32), terminated=bool(rng.random() < 0.5),
                          source="offline"))
    return store


def intervention_segments(episode: Episode, names: tuple[str, ...] | list[str] = (),
                          normalizer: Normalizer | None = None) -> list[Episode]:
    """The stretches of an online episode where a human was in control, each as a demonstration ("offline", never
    evicted): the learner keeps them in the store a second time, as HIL-SERL adds interventions to its demo buffer.
    A stretch that ends the episode keeps its termination and its hold action; the others end where the policy took
    over again and hold after their own last action (`normalised_hold`, given the action `names` and `normalizer`;
    without them they repeat it)."""
    T = len(episode.actions)
    flags = np.r_[False, episode.interventions, False].astype(np.int8)
    starts, ends = np.flatnonzero(np.diff(flags) == 1), np.flatnonzero(np.diff(flags) == -1)  # [start, end)

    def hold(b: int) -> np.ndarray | None:
        if b == T:
            return episode.hold_action
        return None if normalizer is None else normalised_hold(names, normalizer, episode.actions[b - 1])

    return [Episode(episode.states[a:b + 1], episode.actions[a:b], episode.rewards[a:b],
                    episode.terminated and b == T, np.ones(b - a, bool), "offline",
                    {cam: frames[a:b + 1] for cam, frames in episode.images.items()}, episode.succeeded and b == T,
                    hold(b))
            for a, b in zip(starts, ends)]


def save_episode(episode: Episode, directory: Path, index: int) -> Path:
    """Write one episode atomically as an .npz (plain arrays, no pickle): a crash never leaves half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"episode_{index:06d}.npz"
    tmp = directory / f".episode_{index:06d}.tmp.npz"
    np.savez(tmp, states=episode.states, actions=episode.actions, rewards=episode.rewards,
             terminated=np.bool_(episode.terminated), interventions=episode.interventions,
             source=np.str_(episode.source), success=np.bool_(episode.succeeded), hold_action=episode.hold_action,
             **{f"image.{cam}": frames for cam, frames in episode.images.items()})
    os.replace(tmp, final)
    return final


def load_episodes(directory: Path) -> list[Episode]:
    """Every complete episode saved in `directory`, in order (temporary files of an interrupted write are skipped)."""
    episodes = []
    for path in sorted(directory.glob("episode_*.npz")):
        with np.load(path, allow_pickle=False) as z:
            images = {key[len("image."):]: z[key] for key in z.files if key.startswith("image.")}
            success = bool(z["success"]) if "success" in z.files else None  # stores written before it was kept
            hold = z["hold_action"] if "hold_action" in z.files else None  # ditto: those repeat their last action
            episodes.append(Episode(z["states"], z["actions"], z["rewards"], bool(z["terminated"]),
                                    z["interventions"], str(z["source"]), images, success, hold))
    return episodes
