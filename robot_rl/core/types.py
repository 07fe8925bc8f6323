"""Plain data types shared by every layer: action chunks and the action-space naming convention."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ARM_JOINTS: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
GRIPPER = "gripper"
JOINT_SPACE_NAMES: tuple[str, ...] = ARM_JOINTS + (GRIPPER,)
EE_SPACE_NAMES: tuple[str, ...] = ("ee_x", "ee_y", "ee_z", "ee_rx", "ee_ry", "ee_rz", GRIPPER)

# The default control rate: a graph's driver (`control_hz`) may set another, which the bringup passes to every node
# of that graph; the gym envs, sim collection and in-process evaluation run at this one.
CONTROL_HZ = 15.0
# Evaluation episodes use seeds EVAL_SEED + i, never a training or demonstration seed, and the same ones for every
# policy and training seed compared, so differences are paired.
EVAL_SEED = 10_000
# Control steps per episode of each sim task at CONTROL_HZ (gym envs, demo, evaluation, sim collection).
TASK_MAX_STEPS: dict[str, int] = {"reach": 150, "push": 300, "pick_lift": 300, "peg_insert": 300}
# The main job's chunk policy (robot_rl/demo.py; its width is DemoConfig.hidden_dim), the shape the learner benches
# time (robot_rl.rl.distributed.demo_policy_spec)
DEMO_POLICY: dict = {"type": "flow", "horizon": 5, "execute_steps": 5, "hidden_dim": 128}


def action_space_of(names: tuple[str, ...] | list[str]) -> str | None:
    """'joint' or 'ee' when `names` is exactly one of the two conventions, else None."""
    names = tuple(names)
    if names == JOINT_SPACE_NAMES:
        return "joint"
    if names == EE_SPACE_NAMES:
        return "ee"
    return None


def holding_action(names: tuple[str, ...] | list[str], action: np.ndarray) -> np.ndarray:
    """The action that holds the arm where `action` left it: zero EE deltas with the gripper width kept, or (joint
    targets, and any other action space, taken as absolute) the action itself."""
    action = np.asarray(action)
    if action_space_of(names) == "ee":
        return np.r_[np.zeros(len(EE_SPACE_NAMES) - 1, action.dtype), action[-1:]]
    return action.copy()


@dataclass
class ActionChunk:
    """H actions to execute at stamp + (i+1)*dt.

    `stamp` is the capture time of the observation the chunk was computed from (seconds, on the robot clock);
    `points` has shape (H, D) with columns named by `names`.
    """

    stamp: float
    dt: float
    names: tuple[str, ...]
    points: np.ndarray
    source: str = "policy"
    meta: dict = field(default_factory=dict)

    @property
    def horizon(self) -> int:
        return int(self.points.shape[0]) if self.points.ndim == 2 else 0

    @property
    def space(self) -> str | None:
        return action_space_of(self.names)

    def target_time(self, i: int) -> float:
        return self.stamp + (i + 1) * self.dt
