"""Gymnasium envs on PandaSim: normalised EE-delta actions at 15 Hz, sparse success reward.

Every action goes through the same SafetyFilter steps as in the MuJoCo bridge and the arm node (EE step norms,
workspace box, joint step), so a policy scores the same here as through the ROS graph."""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robot_rl.core.safety import SafetyFilter, SafetyLimits
from robot_rl.core.state import ENVIRONMENT_STATE_NAMES, STATE_SIZE, environment_vector, observation_state
from robot_rl.core.types import CONTROL_HZ, TASK_MAX_STEPS
from robot_rl.sim.expert import MAX_STEP_M, MAX_STEP_RAD
from robot_rl.sim.panda_sim import PandaSim
from robot_rl.sim.robot import MAX_GRIPPER_WIDTH

ENV_IDS = {f"RobotRL/Panda{name}-v0": (task, TASK_MAX_STEPS[task])
           for name, task in (("Reach", "reach"), ("Push", "push"), ("PickLift", "pick_lift"),
                              ("PegInsert", "peg_insert"))}
STATE_BOUND = 10.0  # every entry is a position (m), quaternion component or joint angle (rad): well inside


class PandaTaskEnv(gym.Env):
    """Action: EE delta in [-1, 1]^7 (0.01 m / 0.06 rad per step, gripper -1..1 -> 0..0.08 m width); the
    translation and rotation are then clipped to those step limits in norm, as the robot's safety filter does.
    Observation: {"state": float32 (15,), "environment_state": float32 (10,) object + goal} plus one uint8 image
    per configured camera."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, task: str = "reach", max_steps: int = 300, variant: str = "primitive",
                 cameras: dict[str, tuple[int, int]] | None = None, render_mode: str | None = None):
        self.cameras = dict(cameras or {})
        self.render_mode = render_mode
        render_cameras = self.cameras or {"front": (128, 128)}
        self.sim = PandaSim(task, variant=variant, cameras=render_cameras,
                            render=bool(self.cameras) or render_mode == "rgb_array")
        self.max_steps = max_steps
        lower, upper = self.sim.joint_limits()
        self.safety = SafetyFilter(SafetyLimits(), lower, upper, forward_kinematics=self.sim.tcp_position_at)
        self.joint_target = self.sim.joint_positions()
        self.substeps = round(1.0 / (CONTROL_HZ * self.sim.physics_dt))
        self.action_scale = np.array([MAX_STEP_M] * 3 + [MAX_STEP_RAD] * 3)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(7,), dtype=np.float32)
        obs_spaces: dict[str, spaces.Space] = {
            "state": spaces.Box(-STATE_BOUND, STATE_BOUND, shape=(STATE_SIZE,), dtype=np.float32),
            "environment_state": spaces.Box(-STATE_BOUND, STATE_BOUND, shape=(len(ENVIRONMENT_STATE_NAMES),),
                                            dtype=np.float32)}
        for name, (width, height) in self.cameras.items():
            obs_spaces[name] = spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        self.steps = 0

    def _observation(self) -> dict[str, np.ndarray]:
        pos, quat = self.sim.ee_pose()
        joints = self.sim.joint_positions()
        obs = {"state": observation_state(pos, quat, joints),
               "environment_state": environment_vector(self.sim.task_state())}
        for name in self.cameras:
            obs[name] = self.sim.render(name)
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict[str, Any]]:
        super().reset(seed=seed)
        # a given seed places the scene exactly as the MuJoCo bridge does for that episode seed
        self.sim.reset(seed if seed is not None else int(self.np_random.integers(2**31 - 1)))
        self.joint_target = self.sim.joint_positions()
        self.steps = 0
        return self._observation(), {"success": False, "task_state": self.sim.task_state()}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        delta = self.safety.limit_ee_delta(np.r_[action[:6] * self.action_scale,
                                                 (action[6] + 1.0) / 2.0 * MAX_GRIPPER_WIDTH])
        q, width = self.sim.apply_ee_delta(delta, clip_position=self.safety.limit_ee_target)
        self.joint_target = self.safety.limit_joint_target(np.append(q, width), self.joint_target)
        self.sim.set_joint_target(self.joint_target[:7], self.joint_target[7])
        self.sim.step(self.substeps)
        self.steps += 1
        success = self.sim.success()
        info = {"success": success, "task_state": self.sim.task_state()}
        return self._observation(), float(success), success, self.steps >= self.max_steps and not success, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.sim.render(next(iter(self.cameras), "front"))

    def close(self) -> None:
        self.sim.close()


def normalise_ee_delta(delta7: np.ndarray) -> np.ndarray:
    """Inverse of the env's action scaling: an EE delta (m, rad, width) as a [-1, 1] action."""
    delta7 = np.asarray(delta7, dtype=float)
    return np.r_[delta7[:3] / MAX_STEP_M, delta7[3:6] / MAX_STEP_RAD, delta7[6] / MAX_GRIPPER_WIDTH * 2.0 - 1.0]


def register_envs() -> None:
    """Register the RobotRL/Panda*-v0 ids with gymnasium (safe to call repeatedly)."""
    for env_id, (task, max_steps) in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=PandaTaskEnv, kwargs={"task": task, "max_steps": max_steps})
