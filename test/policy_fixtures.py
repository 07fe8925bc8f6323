"""Small untrained chunk policies for the tests: flow policies with the sim graph's layout (EE-delta actions, the robot
state and optionally the object pose or a camera) for the tests that start a policy or learner node, and the spec of a
tiny tokenized policy."""
from __future__ import annotations

import numpy as np
import torch

from robot_rl.core.state import ENVIRONMENT_STATE_NAMES, STATE_NAMES
from robot_rl.core.types import EE_SPACE_NAMES
from robot_rl.policies import PolicySpec, build_policy
from robot_rl.policies.normalizer import Normalizer


def ee_normalizer(state_dim: int, step_m: float = 0.01, step_rad: float = 0.06) -> Normalizer:
    """Actions scaled by one EE step (gripper 0..0.08 m), states left as they are."""
    low = np.r_[[-step_m] * 3, [-step_rad] * 3, 0.0]
    return Normalizer.from_stats(low, -low + np.r_[[0] * 6, 0.08], np.zeros(state_dim), np.ones(state_dim))


def tiny_sim_policy(seed: int = 0, environment_state: bool = True, cameras: tuple[str, ...] = (),
                    action_names=EE_SPACE_NAMES, hidden_dim: int = 32, depth: int = 2, flow_steps: int = 4,
                    step_m: float = 0.01, step_rad: float = 0.06):
    """A flow policy of horizon 5 (seeded); state = robot state (+ object pose and goal with `environment_state`);
    EE actions scaled by one EE step, any other action space unscaled."""
    torch.manual_seed(seed)
    state_dim = len(STATE_NAMES) + (len(ENVIRONMENT_STATE_NAMES) if environment_state else 0)
    spec = PolicySpec(type="flow", action_names=list(action_names), state_dim=state_dim,
                      environment_state=environment_state, cameras=list(cameras), image_size=16, horizon=5,
                      execute_steps=5, hidden_dim=hidden_dim, depth=depth, flow_steps=flow_steps)
    ee = tuple(action_names) == EE_SPACE_NAMES
    return build_policy(spec, ee_normalizer(state_dim, step_m, step_rad) if ee else None)


def tokenized_spec(action_names=("x", "y", "gripper"), state_dim=4, horizon=4, cameras=(), tokenizer=None,
                   **options) -> PolicySpec:
    """A one-layer tokenized policy (binning tokenizer unless `tokenizer`), `options` going to its tokenized section."""
    opts = dict(tokenizer=tokenizer or {"kind": "bin", "bins": 16}, instruction="toy", max_instruction_bytes=8)
    return PolicySpec(type="tokenized", action_names=list(action_names), state_dim=state_dim, horizon=horizon,
                      execute_steps=horizon, cameras=list(cameras), image_size=32, hidden_dim=32, depth=1,
                      tokenized=opts | options)
