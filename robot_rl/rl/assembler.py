"""Assembles episodes from the live streams, matched by stamp (no ROS here; the learner node feeds it).

At control tick t the driver publishes the observation stamped t, then executes one action, published on
`executed_action` stamped t. The reward record stamped t + dt scores the state that action led to. So the transition
of tick t is (s_t, a_t, r_{t+dt}), and the episode ends at the first successful reward (or when the episode
manager says it ended).
"""
from __future__ import annotations

import numpy as np

from robot_rl.rl.replay import Episode


def _key(stamp: float) -> int:
    return int(round(stamp * 1e6))  # stamps compared at microsecond resolution


class EpisodeAssembler:
    def __init__(self, period: float):
        self.period = period
        self.reset()

    def reset(self) -> None:
        self.states: dict[int, np.ndarray] = {}
        self.actions: dict[int, tuple[np.ndarray, bool]] = {}
        self.rewards: dict[int, tuple[float, bool]] = {}

    def add_state(self, stamp: float, state: np.ndarray) -> None:
        self.states[_key(stamp)] = np.asarray(state, dtype=np.float32)

    def add_action(self, stamp: float, action: np.ndarray, is_intervention: bool) -> None:
        self.actions[_key(stamp)] = (np.asarray(action, dtype=np.float32), is_intervention)

    def add_reward(self, stamp: float, reward: float, success: bool) -> None:
        self.rewards[_key(stamp)] = (float(reward), bool(success))

    def finish(self, start_stamp: float) -> tuple[Episode | None, str]:
        """The episode since `start_stamp` (actions in raw units), or None and the reason it could not be built."""
        ticks = sorted(k for k in self.actions if k >= _key(start_stamp) - 1)
        step = _key(self.period)
        states, actions, rewards, interventions = [], [], [], []
        terminated = False
        for k in ticks:
            if k not in self.states:
                return None, f"no state for the action at t={k * 1e-6:.3f}"
            action, human = self.actions[k]
            reward, success = self._reward_after(k, step)
            states.append(self.states[k])
            actions.append(action)
            rewards.append(reward)
            interventions.append(human)
            if success:
                terminated = True
                break
        if not actions:
            return None, "no executed actions"
        last = _key_near(self.states, ticks[len(actions) - 1] + step, step)
        if last is None:
            return None, "no state after the last action"
        states.append(self.states[last])
        episode = Episode(np.stack(states), np.stack(actions), np.asarray(rewards, dtype=np.float32), terminated,
                          np.asarray(interventions, dtype=bool))
        self.reset()
        return episode, ""

    def _reward_after(self, k: int, step: int) -> tuple[float, bool]:
        near = _key_near(self.rewards, k + step, step)
        return self.rewards[near] if near is not None else (0.0, False)


def _key_near(table: dict[int, object], key: int, step: int) -> int | None:
    """The entry at `key`, or the nearest within half a period (stamps on a physics grid)."""
    if key in table:
        return key
    best = min(table, key=lambda k: abs(k - key), default=None)
    return best if best is not None and abs(best - key) <= step // 2 else None
