"""The Franka as the arm node drives it (no ROS): the franky arm and its gripper thread, the measured state, the
commanded joint and TCP targets behind the safety filter's per-tick limits, holding and the ramp home.

Every method that talks to the robot raises ArmFault; the node turns that into its `error` state.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from robot_rl.configs.arm import FrankaConfig
from robot_rl.core.rotations import integrate_ee_delta
from robot_rl.core.safety import SafetyFilter, SafetyLimits
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES, holding_action
from robot_rl.hardware.franka import ArmFault, ArmState, FrankaArm, GripperWorker


class FrankaRobot:
    def __init__(self, cfg: FrankaConfig, limits: SafetyLimits):
        self.cfg = cfg
        self.arm = FrankaArm(cfg)
        self.gripper = GripperWorker(cfg) if cfg.gripper else None
        lower, upper, _ = cfg.joint_arrays()
        self.safety = SafetyFilter(limits, np.r_[lower, limits.gripper_min], np.r_[upper, limits.gripper_max],
                                   forward_kinematics=self.arm.tcp_position_at)
        self.measured: ArmState | None = None
        self.joint_target = np.zeros(8)  # last commanded joint target (7 + gripper)
        self.ee_target = (np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]))  # last commanded TCP pose
        self.hold_action = (JOINT_SPACE_NAMES, self.joint_target)  # what a tick without a new point executes

    def read(self) -> ArmState:
        self.measured = self.arm.read()
        return self.measured

    def joints(self) -> np.ndarray:
        """The last measured joints and gripper width (0 until the gripper has reported one)."""
        width = self.gripper.width if self.gripper is not None else float("nan")
        return np.r_[self.measured.q, width if np.isfinite(width) else 0.0]

    def seed_targets(self) -> None:
        """Commanded targets := the measured state (after a hold, a space switch, a recover)."""
        self.joint_target = self.joints()
        self.ee_target = (self.measured.ee_position.copy(), self.measured.ee_quat_wxyz.copy())

    def hold(self, keep_tracking: bool) -> None:
        """Freeze the reference at the measured pose (next 1 kHz cycle); with keep_tracking=False end the tracker
        and leave the robot idle (it holds itself). A pending gripper target is dropped."""
        if self.gripper is not None:
            self.gripper.cancel()
        if not self.arm.connected:
            return
        if keep_tracking:
            self.arm.hold(self.read())
        else:
            self.arm.stop()
        self.read()
        self.seed_targets()
        self.hold_action = (JOINT_SPACE_NAMES, self.joint_target)

    def move_home(self, keep_tracking: bool, step_hz: float, on_step: Callable[[], None]) -> None:
        """Ramp the joint tracker to `home` at reset_speed_rad_s (one control mode throughout), calling on_step at
        `step_hz` meanwhile (the node publishes observations: it is blocked in this call)."""
        cfg = self.cfg
        start = self.read().q
        home = self.arm.home
        duration = float(np.abs(home - start).max()) / cfg.reset_speed_rad_s
        t0 = time.monotonic()
        while True:
            elapsed = time.monotonic() - t0
            s = min(1.0, elapsed / duration) if duration > 0 else 1.0
            state = self.read()
            self.arm.track_joints(start + s * (home - start), state.q)
            on_step()
            if s >= 1.0 and np.abs(state.q - home).max() < cfg.reset_tolerance_rad:
                break
            if elapsed > duration + cfg.reset_timeout_s:
                raise ArmFault(f"reset did not reach home within {cfg.reset_timeout_s} s "
                               f"(max error {np.abs(state.q - home).max():.3f} rad)")
            time.sleep(1.0 / step_hz)
        self.arm.check()
        if not keep_tracking:
            self.arm.stop()
        self.read()
        self.seed_targets()

    def command(self, names: tuple[str, ...], values: np.ndarray) -> np.ndarray:
        """Track one chunk point, clipped to the per-tick limits; returns what was commanded."""
        space = "ee" if names == EE_SPACE_NAMES else "joint"
        if space != self.arm.space:
            self.seed_targets()  # the other tracker moved the arm: continue from where it is
        q = self.measured.q
        if space == "ee":
            delta = self.safety.limit_ee_delta(values)
            position, quat = integrate_ee_delta(*self.ee_target, delta)
            position = self.safety.limit_ee_target(position)
            self.arm.track_pose(position, quat, q)
            self.ee_target = (position, quat)
            self.hold_action = (EE_SPACE_NAMES, holding_action(EE_SPACE_NAMES, delta))
            width, executed = delta[6], delta
        else:
            target = self.safety.limit_joint_target(values, self.joint_target)
            self.arm.track_joints(target[:7], q)
            self.joint_target = target
            self.hold_action = (JOINT_SPACE_NAMES, target)
            width, executed = target[7], target
        if self.gripper is not None:
            self.gripper.command(width)
        return executed

    def describe(self, message: str) -> str:
        """The node's status message with the gripper thread's error, if any."""
        if self.gripper is not None and self.gripper.error:
            return f"{message} | gripper: {self.gripper.error}".strip(" |")
        return message

    def close(self) -> None:
        if self.gripper is not None:
            self.gripper.close()
        self.arm.close()
