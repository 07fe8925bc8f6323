"""Assembles episodes from the live streams, matched by stamp (no ROS here; the learner node feeds it).

At control tick t the driver publishes the observation stamped t, then executes one action, published on
`executed_action` stamped t. The reward record stamped t + dt scores the state that action led to. So the transition
of tick t is (s_t, a_t, r_{t+dt}), and the episode ends at the first successful reward (or when the episode
manager says it ended). The state s_t is made of the parts of one observation (joints, EE pose, the sim task state,
camera frames), each arriving on its own stream: a tick's state exists once every part stamped t has come.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_rl.core.episodes import tally
from robot_rl.core.stamps import nearest_key, stamp_key
from robot_rl.core.state import camera_stream, observation_streams, state_from_streams
from robot_rl.rl.replay import Episode


MAX_BUFFERED_STATES = 10_000
REWARD_WAIT_S = 5.0  # once every stream has moved past an ended episode: how long its last reward may still take
END_WAIT_MAX_S = 60.0  # after `ended`: the longest wait for streams that stopped (a driver that died)
ACTIONS_STREAM = "executed_action"
PART_LIFETIME_S = 1.0  # a part whose partners have not come within this much stream time never gets them
GRID_JITTER_S = 0.002  # control ticks fall on the 2 ms physics grid, not exactly k·dt apart


class RateMismatch(ValueError):
    """The executed actions come at another rate than the learner's control period: pairing them with states and
    rewards one period apart would make wrong transitions."""


@dataclass
class Assembly:
    """Where finish() put each executed action of the episode: into a transition, or left out under one cause."""
    actions: int = 0         # executed actions (holds are not sent here) since the episode's start
    transitions: int = 0
    rewards: int = 0         # transitions whose reward record arrived (the others are stored with reward 0)
    without_state: int = 0   # leading actions whose state never came (the first states can beat DDS discovery)
    cut: int = 0             # from the first action whose next state is missing: the episode ends before it
    after_terminal: int = 0  # after the first successful reward, which ends the episode

    def note(self) -> str:
        """The ticks left out, in words ("" when none was)."""
        parts = [f"{self.without_state} first action(s) had no state" if self.without_state else "",
                 f"{self.cut} action(s) cut: no state after the action at the cut" if self.cut else "",
                 f"{self.rewards_missing} transition(s) without a reward record" if self.rewards_missing else ""]
        return "; ".join(p for p in parts if p)

    @property
    def rewards_missing(self) -> int:
        return self.transitions - self.rewards

    def accounting(self, episode: int, expected: int | None) -> dict:
        """Against the `expected` executed actions (the driver's count less its holds; None: unknown): core tally."""
        return tally(episode, expected, self.transitions, rewards=self.rewards,
                     excluded={"after_terminal": self.after_terminal},
                     dropped={"not_received": max(0, (expected or 0) - self.actions),
                              "without_state": self.without_state, "cut_no_next_state": self.cut})


@dataclass
class EndWait:
    """When to take an episode that has ended: once everything its transitions need has come; or, once every stream has
    moved past its end (what is missing was lost), after REWARD_WAIT_S more for its last reward record; or after
    END_WAIT_MAX_S. Judged by the streams' own stamps, not by the wall clock alone: a busy process may take seconds to
    work through an episode's backlog, and that is not loss."""
    start_stamp: float
    end_stamp: float
    expected: int | None  # the actions the driver sent (EpisodeStatus.expected_actions)
    since: float          # wall time of `ended`
    reward_deadline: float | None = field(default=None)

    def due(self, assembler: EpisodeAssembler, now: float) -> bool:
        if assembler.complete(self.start_stamp, self.end_stamp, self.expected):
            return True
        if assembler.passed(self.end_stamp):
            self.reward_deadline = self.reward_deadline or now + REWARD_WAIT_S
            return now > self.reward_deadline
        return now > self.since + END_WAIT_MAX_S


class EpisodeAssembler:
    def __init__(self, period: float, environment_state: bool = False, cameras=()):
        self.period = period
        self.cameras = tuple(cameras)
        # parts waiting for their partners with the same stamp, per stream
        self.pending: dict[str, dict[int, object]] = {
            stream: {} for stream in observation_streams(environment_state, self.cameras)}
        self.streams_seen: set[str] = set()
        self.newest: dict[str, int] = {}  # per stream, the newest stamp key taken (executed actions: holds too)
        self.states: dict[int, np.ndarray] = {}
        self.images: dict[int, dict[str, np.ndarray]] = {}  # camera frames of the same stamps (camera policies)
        self.actions: dict[int, tuple[np.ndarray, bool]] = {}
        self.rewards: dict[int, tuple[float, bool]] = {}

    def discard_before(self, stamp: float) -> None:
        """Forget everything stamped more than a period before `stamp` (an episode starts there). States arrive
        on their own topics and may come before the episode's `running` status, so they are kept between episodes."""
        oldest = stamp_key(stamp - self.period)
        for table in (self.states, self.images, self.actions, self.rewards):
            for k in [k for k in table if k < oldest]:
                del table[k]

    def add_state(self, stamp: float, state: np.ndarray, images: dict[str, np.ndarray] | None = None) -> None:
        key = stamp_key(stamp)
        self.states[key] = np.asarray(state, dtype=np.float32)
        if images:
            self.images[key] = images
        if len(self.states) > MAX_BUFFERED_STATES:  # idle between episodes: keep only the newest
            self.discard_before(stamp - MAX_BUFFERED_STATES * self.period / 2)

    def add_part(self, stream: str, stamp: float, sample) -> None:
        """One stream's sample of the observation stamped `stamp` (a stream of observation_streams); with the last
        of its parts it becomes that tick's state. Raises KeyError / ValueError for samples that make no state."""
        self.streams_seen.add(stream)
        key = stamp_key(stamp)
        self._saw(stream, key)
        for table in self.pending.values():
            for old in [k for k in table if k < key - stamp_key(PART_LIFETIME_S)]:
                del table[old]
        self.pending[stream][key] = sample
        if all(key in table for table in self.pending.values()):
            samples = {name: table.pop(key) for name, table in self.pending.items()}
            self.add_state(stamp, state_from_streams(samples),
                           {cam: samples[camera_stream(cam)] for cam in self.cameras})

    def every_stream_seen(self) -> bool:
        return self.streams_seen >= set(self.pending)

    def add_action(self, stamp: float, action: np.ndarray, is_intervention: bool) -> None:
        self.actions[stamp_key(stamp)] = (np.asarray(action, dtype=np.float32), is_intervention)
        self._saw(ACTIONS_STREAM, stamp_key(stamp))

    def add_hold(self, stamp: float) -> None:
        """A tick the driver held (no transition): it still shows how far the action stream has come."""
        self._saw(ACTIONS_STREAM, stamp_key(stamp))

    def _saw(self, stream: str, key: int) -> None:
        self.newest[stream] = max(self.newest.get(stream, key), key)

    def passed(self, stamp: float) -> bool:
        """Every stream has delivered a sample stamped two periods after `stamp`. Each stream arrives in order, so
        nothing stamped up to `stamp` is still on its way: what is missing was lost."""
        after = stamp_key(stamp) + 2 * stamp_key(self.period)
        return all(self.newest.get(s, -1) > after for s in (*self.pending, ACTIONS_STREAM))

    def add_reward(self, stamp: float, reward: float, success: bool) -> None:
        self.rewards[stamp_key(stamp)] = (float(reward), bool(success))

    def complete(self, start_stamp: float, end_stamp: float | None, expected: int | None) -> bool:
        """Whether everything the episode's transitions need has come: the `expected` executed actions (None:
        unknown, then those there are), the state after the last one and its reward. Each stream crosses DDS on its
        own, so at `ended` the last tick's parts can still be on their way."""
        ticks = self.ticks_between(start_stamp, end_stamp)
        if not ticks or (expected is not None and len(ticks) < expected):
            return False
        step = stamp_key(self.period)
        return (nearest_key(self.states, ticks[-1] + step, step // 2) is not None
                and nearest_key(self.rewards, ticks[-1] + step, step // 2) is not None)

    def finish(self, start_stamp: float, end_stamp: float | None = None) -> tuple[Episode | None, Assembly]:
        """The episode from `start_stamp` to `end_stamp` (None: all since; the next episode's first actions can be in
        already), actions in raw units (its hold_action is the raw last action: the learner stores the episode
        normalised, with replay.normalised_hold), or None, and where each executed action went.
        Leading ticks without a state are skipped (the first states can beat DDS discovery); a later gap ends the
        episode at the last transition whose next state arrived. Raises RateMismatch when the actions are spaced at
        another period than the configured one."""
        step = stamp_key(self.period)
        ticks = self.ticks_between(start_stamp, end_stamp)
        self._check_rate(ticks)
        tally = Assembly(actions=len(ticks))
        states = [nearest_key(self.states, k, step // 2) for k in ticks]  # ticks jitter on the physics grid
        first = next((i for i, s in enumerate(states) if s is not None), len(ticks))
        tally.without_state = first
        rows, terminated = [], False
        for i in range(first, len(ticks)):
            following = nearest_key(self.states, ticks[i] + step, step // 2)  # s_{t+dt}, also the next row's state
            if following is None:
                tally.cut = len(ticks) - i
                break
            reward, success, matched = self._reward_after(ticks[i], step)
            action, human = self.actions[ticks[i]]
            rows.append((states[i], action, reward, human, following))
            tally.rewards += matched
            if success:
                terminated = True
                tally.after_terminal = len(ticks) - i - 1
                break
        tally.transitions = len(rows)
        last = ticks[-1] + step + step // 2 if ticks else None  # the newest stamp the episode could have used
        if not rows:
            self._forget_through(last)
            return None, tally
        keys = [r[0] for r in rows] + [rows[-1][4]]  # the stamps of s_0..s_T
        cameras = self.images.get(keys[0], {})
        episode = Episode(np.stack([self.states[k] for k in keys]), np.stack([r[1] for r in rows]),
                          np.asarray([r[2] for r in rows], dtype=np.float32), terminated,
                          np.asarray([r[3] for r in rows], dtype=bool),
                          images={cam: np.stack([self.images[k][cam] for k in keys]) for cam in cameras})
        self._forget_through(last)
        return episode, tally

    def _forget_through(self, last: int | None) -> None:
        """Drop what the finished episode used, up to its last tick's next state; what is newer (the next
        episode's first states, which can come before its `running`) stays."""
        if last is None:
            return
        for table in (self.states, self.images, self.actions, self.rewards):
            for k in [k for k in table if k <= last]:
                del table[k]

    def ticks_between(self, start_stamp: float, end_stamp: float | None = None) -> list[int]:
        """The stamp keys of the executed actions from `start_stamp` up to `end_stamp` (None: all since); stamps jitter
        on the physics grid."""
        half = stamp_key(self.period) // 2
        last = float("inf") if end_stamp is None else stamp_key(end_stamp) + half
        return sorted(k for k in self.actions if stamp_key(start_stamp) - half <= k <= last)

    def _check_rate(self, ticks: list[int]) -> None:
        """The actions' spacing, averaged over those near the median (a dropped action makes a gap, the physics grid
        a jitter), must be the configured period."""
        if len(ticks) < 2:
            return
        spacings = np.diff(ticks) * 1e-6
        spacing = spacings[np.abs(spacings - np.median(spacings)) <= GRID_JITTER_S].mean()
        if abs(spacing - self.period) > GRID_JITTER_S:
            raise RateMismatch(f"executed actions arrive at {1 / spacing:.1f} Hz, the learner is configured for "
                               f"{1 / self.period:.1f} Hz")

    def _reward_after(self, k: int, step: int) -> tuple[float, bool, bool]:
        """(reward, success, whether its record arrived) of the tick after `k`."""
        near = nearest_key(self.rewards, k + step, step // 2)
        return (*self.rewards[near], True) if near is not None else (0.0, False, False)
