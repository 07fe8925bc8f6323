"""Franka arm node parameters (robot_rl.nodes.arm), the franky device layer's among them (`robot`), importable
without franky."""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

from robot_rl.configs.driver import DriverConfig
from robot_rl.core.types import CONTROL_HZ

# FR3 joint limits (Franka datasheet); a Panda (FER) owner overrides them in config/arm.yaml.
FR3_JOINT_LOWER = (-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159)
FR3_JOINT_UPPER = (2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159)
READY_POSE = (0.0, -0.785398, 0.0, -2.356194, 0.0, 1.570796, 0.785398)  # Franka's "ready" configuration


class FrankaConfig(BaseModel, extra="forbid"):
    """Connection, impedance gains, reference limits and gripper settings (`robot.*` in config/arm.yaml)."""

    host: str = Field("127.0.0.1", description="FCI address of the robot (franky-sim listens on a loopback address)")
    realtime: Literal["enforce", "ignore"] = Field(
        "enforce", description="libfranka RealtimeConfig: 'ignore' on machines without a PREEMPT_RT kernel")
    joint_lower: tuple[float, ...] = FR3_JOINT_LOWER
    joint_upper: tuple[float, ...] = FR3_JOINT_UPPER
    home: tuple[float, ...] = READY_POSE
    joint_stiffness: tuple[float, ...] = (600.0, 600.0, 600.0, 600.0, 250.0, 150.0, 50.0)
    joint_error_clip_rad: float = Field(0.05, gt=0, description="|q_ref - q| bound per joint (reference limiting)")
    translational_stiffness: float = Field(2000.0, gt=0, description="N/m (SERL compliance value)")
    rotational_stiffness: float = Field(150.0, gt=0, description="Nm/rad (SERL compliance value)")
    translational_error_clip_m: float = Field(0.01, gt=0, description="per-axis pose error bound in the 1 kHz loop")
    rotational_error_clip_rad: float = Field(0.05, gt=0)
    max_delta_tau: float = Field(1.0, gt=0, description="torque rate limit per 1 ms cycle (Nm)")
    torque_threshold: float = Field(20.0, gt=0, description="collision reflex threshold per joint (Nm)")
    force_threshold: float = Field(30.0, gt=0, description="collision reflex threshold on the EE (N)")
    reset_speed_rad_s: float = Field(0.4, gt=0, le=1.5)
    reset_tolerance_rad: float = Field(0.03, gt=0)
    reset_timeout_s: float = Field(20.0, gt=0)
    gripper: bool = True
    gripper_speed: float = Field(0.1, gt=0, le=0.2, description="m/s")
    gripper_force: float = Field(20.0, gt=0, le=70, description="N, for grasps")
    gripper_grasp_below_m: float = Field(0.01, ge=0, description="targets below this width grasp with force")
    gripper_deadband_m: float = Field(0.002, gt=0, description="smaller width changes are not sent")

    @model_validator(mode="after")
    def _check_joint_vectors(self) -> FrankaConfig:
        for name in ("joint_lower", "joint_upper", "home", "joint_stiffness"):
            if len(getattr(self, name)) != 7:
                raise ValueError(f"{name} needs 7 values, got {len(getattr(self, name))}")
        lower, upper, home = self.joint_arrays()
        if np.any(lower >= upper):
            raise ValueError("joint_lower must lie below joint_upper for every joint")
        if np.any(home < lower) or np.any(home > upper):
            raise ValueError("home lies outside the joint limits")
        return self

    def joint_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(np.asarray(v, dtype=float) for v in (self.joint_lower, self.joint_upper, self.home))


class ArmConfig(DriverConfig):
    task: str = Field("real", description="task name reported by arm/reset")
    control_hz: float = Field(CONTROL_HZ, gt=0, le=200)  # the arm node's own bound (the bridge's is 500)
    state_hz: float = Field(200.0, ge=100, le=1000, description="joint_states / ee_pose rate")
    reconnect_period_s: float = Field(1.0, gt=0)
    robot: FrankaConfig = FrankaConfig()
