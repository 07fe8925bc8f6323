"""Scripted policy backend: the sim task's expert, so the loop runs before any learning exists.

It reads the privileged `sim/task_state` stream, which only the simulator has.
"""
from __future__ import annotations

import numpy as np

from robot_rl.core.observation import Observation
from robot_rl.core.state import JOINT_STATES_STREAM, TASK_STATE_STREAM
from robot_rl.core.types import EE_SPACE_NAMES
from robot_rl.sim import expert_chunk


class ScriptedBackend:
    action_names = EE_SPACE_NAMES
    required_streams = (JOINT_STATES_STREAM, TASK_STATE_STREAM)  # joint_states: planning runs on its stamps
    cameras = ()

    def __init__(self, horizon: int, noise: float = 0.0, seed: int = 0):
        self.horizon = horizon
        self.noise = noise
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def reset(self, episode: int) -> None:
        self.rng = np.random.default_rng([self.seed, episode])

    def act(self, obs: Observation) -> np.ndarray:
        return expert_chunk(obs.values[TASK_STATE_STREAM], self.horizon, self.rng, self.noise)
