"""Franka arm node (`arm`): the real-robot counterpart of the MuJoCo bridge's arm, on franky.

Same contract as the bridge: consumes `action_chunk`, publishes `joint_states` (7 joints + gripper width, at
`state_hz` >= 100 Hz), `ee_pose`, `executed_action` and `arm/status` (ArmStatus records), serves
`arm/reset|stop|recover|enable`. Chunks go through the shared SafetyFilter and ChunkExecutor on the ROS clock; each
control tick's point becomes an impedance-tracker reference (robot_rl/hardware/franka.py, docs/hardware_arm.md).

States: disabled (robot idle, holds itself) -> ready (tracker following chunks) -> estop (reference frozen at the
measured pose in the service callback, i.e. by the next 1 kHz cycle) or error (a reflex, control exception or lost
link: the tracker is gone and nothing moves until `arm/recover`). A lost link is reported and retried in the
background; `arm/recover` clears reflexes and returns to ready (if enabled) or disabled.
"""
from __future__ import annotations

import json
import time

import numpy as np
import rclpy
from pydantic import BaseModel, Field
from rclpy.node import Node

from robot_rl.core.executor import ChunkExecutor, Tick
from robot_rl.core.rotations import integrate_ee_delta
from robot_rl.core.safety import SafetyFilter, SafetyLimits
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES
from robot_rl.hardware.franka import ArmFault, ArmState, FrankaArm, FrankaConfig, GripperWorker
from robot_rl.nodes.driver_base import ArmDriver
from robot_rl.ros import convert
from robot_rl.ros.node_runtime import declare_config, run_node


class ArmConfig(BaseModel, extra="forbid"):
    task: str = Field("real", description="task name reported by arm/reset")
    control_hz: float = Field(15.0, gt=0, le=200)
    state_hz: float = Field(200.0, ge=100, le=1000, description="joint_states / ee_pose rate")
    watchdog_periods: float = Field(3.0, ge=1)
    ensemble_weight: float | None = Field(None, gt=0, le=1)
    status_hz: float = Field(2.0, gt=0)
    reconnect_period_s: float = Field(1.0, gt=0)
    frame_id: str = "panda_link0"
    robot: FrankaConfig = FrankaConfig()
    safety: SafetyLimits = SafetyLimits()


CONFIG = ArmConfig


class ArmNode(ArmDriver, Node):
    def __init__(self):
        super().__init__("arm")
        self.cfg = declare_config(self, ArmConfig)
        cfg = self.cfg
        lower, upper, _ = cfg.robot.joint_arrays()
        self.period = 1.0 / cfg.control_hz
        self.arm = FrankaArm(cfg.robot)
        self.gripper = GripperWorker(cfg.robot) if cfg.robot.gripper else None
        self.safety = SafetyFilter(cfg.safety, np.r_[lower, cfg.safety.gripper_min], np.r_[upper, cfg.safety.gripper_max],
                                   forward_kinematics=self.arm.tcp_position_at)
        self.chunk_executor = ChunkExecutor(self.period, cfg.watchdog_periods * self.period, cfg.ensemble_weight)
        self.enabled = False
        self.state = "disabled"
        self.message = ""
        self.last_rejection = ""
        self.resets = 0
        self.measured: ArmState | None = None
        self.joint_target = np.zeros(8)  # last commanded joint target (7 + gripper)
        self.ee_target = (np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0]))  # last commanded TCP pose
        self.hold_action = (JOINT_SPACE_NAMES, self.joint_target)

        self._serve_arm_contract()

        try:
            self.arm.connect()
            self._read()
            self.get_logger().info(f"arm up: {cfg.robot.host} realtime={cfg.robot.realtime} control={cfg.control_hz} Hz")
        except ArmFault as fault:
            self._fault(fault)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _gripper_width(self) -> float:
        width = self.gripper.width if self.gripper is not None else float("nan")
        return width if np.isfinite(width) else 0.0

    def _read(self) -> ArmState:
        self.measured = self.arm.read()
        return self.measured

    def _current_joints(self) -> np.ndarray:
        return np.r_[self.measured.q, self._gripper_width()]

    # ---- holding and faults ----------------------------------------------------------------------------------------
    def _seed_targets(self) -> None:
        """Commanded targets := the measured state (after a hold, a space switch, a recover)."""
        self.joint_target = self._current_joints()
        self.ee_target = (self.measured.ee_position.copy(), self.measured.ee_quat_wxyz.copy())

    def _hold_here(self, keep_tracking: bool) -> None:
        """Freeze the reference at the measured pose (next 1 kHz cycle); with keep_tracking=False end the tracker."""
        self.chunk_executor.reset(self._now())
        if self.gripper is not None:
            self.gripper.cancel()
        if not self.arm.connected:
            return
        try:
            if keep_tracking:
                self.arm.hold(self._read())
            else:
                self.arm.stop()
            self._read()
            self._seed_targets()
        except ArmFault as fault:
            self._fault(fault)
            return
        self.hold_action = (JOINT_SPACE_NAMES, self.joint_target)

    def _fault(self, fault: ArmFault) -> None:
        """Error state: nothing moves until arm/recover; a lost link is retried in the background."""
        self.state = "error"
        self.message = str(fault)
        self.chunk_executor.reset(self._now())
        self.get_logger().error(f"arm error, motion stopped until arm/recover: {fault}")
        if fault.connection_lost:
            self.arm.reconnect_in_background(self.cfg.reconnect_period_s, self._on_reconnected)
        self._publish_status()

    def _on_command_error(self, err: Exception) -> None:
        self._fault(err if isinstance(err, ArmFault) else ArmFault(f"{type(err).__name__}: {err}"))

    def _on_reconnected(self) -> None:  # runs in the reconnect thread: only set fields, the loop publishes
        if self.state == "error":
            self.message += " | reconnected: call arm/recover"

    # ---- callbacks -------------------------------------------------------------------------------------------------
    def on_reset(self, _req, resp):
        """Ramp the joint tracker to `robot.home` at reset_speed_rad_s (one control mode throughout)."""
        if self.state in ("estop", "error") or not self.arm.connected:
            resp.success, resp.message = False, f"arm is in {self.state} ({self.message}): call arm/recover first"
            return resp
        ok, why = self._move_home()
        if ok:
            resp.success = True
            resp.message = json.dumps({"seed": self.resets, "task": self.cfg.task, "stamp": self._now()})
            self.resets += 1
        else:
            resp.success, resp.message = False, why
        return resp

    def _move_home(self) -> tuple[bool, str]:
        cfg = self.cfg.robot
        self.chunk_executor.reset(self._now())
        try:
            start = self._read().q
            home = self.arm.home
            duration = float(np.abs(home - start).max()) / cfg.reset_speed_rad_s
            t0 = time.monotonic()
            while True:  # publish observations while moving: this callback holds the executor
                elapsed = time.monotonic() - t0
                s = min(1.0, elapsed / duration) if duration > 0 else 1.0
                state = self._read()
                self.arm.track_joints(start + s * (home - start), state.q)
                self._publish_observation(self._now())
                if s >= 1.0 and np.abs(state.q - home).max() < cfg.reset_tolerance_rad:
                    break
                if elapsed > duration + cfg.reset_timeout_s:
                    raise ArmFault(f"reset did not reach home within {cfg.reset_timeout_s} s "
                                   f"(max error {np.abs(state.q - home).max():.3f} rad)")
                time.sleep(1.0 / self.cfg.state_hz)
            self.arm.check()
            if not self.enabled:
                self.arm.stop()
            self._read()
            self._seed_targets()
        except ArmFault as fault:
            self._fault(fault)
            return False, str(fault)
        return True, ""

    def on_stop(self, _req, resp):
        self.state = "estop"  # set first: the control tick after this callback commands nothing
        self._hold_here(keep_tracking=self.arm.motion is not None)  # an idle robot holds itself
        self.message = "e-stop requested" if self.state == "estop" else self.message
        self._publish_status()
        resp.success, resp.message = True, "e-stop: holding position; call arm/recover to resume"
        return resp

    def on_recover(self, _req, resp):
        was = self.state
        try:
            if not self.arm.connected:
                self.arm.connect()
            self.arm.recover()
            self._read()
        except ArmFault as fault:
            self.message = str(fault)
            self._publish_status()
            resp.success, resp.message = False, f"cannot recover from {was}: {fault}"
            return resp
        self.state = "ready" if self.enabled else "disabled"
        self.message = ""
        self._hold_here(keep_tracking=self.enabled)
        self._publish_status()
        resp.success, resp.message = self.state != "error", f"recovered from {was}; now {self.state}"
        return resp

    def _on_enabled(self, enabled: bool) -> None:
        self._hold_here(keep_tracking=enabled)  # enable: a joint tracker at the measured pose; disable: idle

    # ---- main loop -------------------------------------------------------------------------------------------------
    def loop(self, executor) -> None:
        """Observations at state_hz and executor ticks at control_hz, both on absolute schedules."""
        now = self._now()
        next_state, next_control, next_status = now, now, now
        state_period = 1.0 / self.cfg.state_hz
        while rclpy.ok():
            executor.spin_once(timeout_sec=max(0.0, min(next_state, next_control) - self._now()))
            now = self._now()
            if now >= next_state:
                self._supervise()
                self._publish_observation(now)
                next_state = max(next_state + state_period, now - state_period)
            if now >= next_control:
                self._apply(self.chunk_executor.tick(now) if self.state == "ready" else Tick("idle"))
                next_control = max(next_control + self.period, now - self.period)
            if now >= next_status:
                self._publish_status()
                next_status = now + 1.0 / self.cfg.status_hz

    def _supervise(self) -> None:
        """Surface faults stored by franky's control thread (reflexes, control exceptions, a lost link)."""
        if self.state in ("ready", "estop") and self.arm.connected:
            try:
                self.arm.check()
            except ArmFault as fault:
                self._fault(fault)

    def _command(self, names: tuple[str, ...], values: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        space = "ee" if names == EE_SPACE_NAMES else "joint"
        if space != self.arm.space:
            self._seed_targets()  # the other tracker moved the arm: continue from where it is
        q = self.measured.q
        if space == "ee":
            delta = self.safety.limit_ee_delta(values)
            position, quat = integrate_ee_delta(*self.ee_target, delta)
            position = self.safety.limit_ee_target(position)
            self.arm.track_pose(position, quat, q)
            self.ee_target = (position, quat)
            self.hold_action = (EE_SPACE_NAMES, np.r_[np.zeros(6), delta[6]])
            width, executed = delta[6], delta
        else:
            target = self.safety.limit_joint_target(values, self.joint_target)
            self.arm.track_joints(target[:7], q)
            self.joint_target = target
            self.hold_action = (JOINT_SPACE_NAMES, target)
            width, executed = target[7], target
        if self.gripper is not None:
            self.gripper.command(width)
        return names, executed

    def _publish_observation(self, now: float) -> None:
        if not self.arm.connected:
            return  # no stale state is published while the link is down
        try:
            state = self._read()
            if self.state == "ready":
                self.arm.relimit(state.q)
        except ArmFault as fault:
            self._fault(fault)
            return
        self.pub_joints.publish(convert.joint_state_msg(
            JOINT_SPACE_NAMES, self._current_joints(), np.r_[state.dq, 0.0], now))
        self.pub_pose.publish(convert.pose_msg(state.ee_position, state.ee_quat_wxyz, now, self.cfg.frame_id))

    def _status_message(self) -> str:
        if self.gripper is not None and self.gripper.error:
            return f"{self.message} | gripper: {self.gripper.error}".strip(" |")
        return self.message

    def close(self) -> None:
        if self.gripper is not None:
            self.gripper.close()
        self.arm.close()


def main(args=None) -> None:
    raise SystemExit(run_node(ArmNode, args))


if __name__ == "__main__":
    main()
