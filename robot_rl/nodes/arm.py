"""Franka arm node (`arm`): the real-robot counterpart of the MuJoCo bridge's arm, on franky.

Same contract as the bridge: consumes `action_chunk`, publishes `joint_states` (7 joints + gripper width, at
`state_hz` >= 100 Hz), `ee_pose`, `executed_action` and `arm/status` (ArmStatus records), serves
`arm/reset|stop|recover|enable`. Chunks go through the shared SafetyFilter and ChunkExecutor on the ROS clock; each
control tick's point becomes an impedance-tracker reference (robot_rl/hardware/franka_robot.py, docs/hardware_arm.md).

States: disabled (robot idle, holds itself) -> ready (tracker following chunks) -> estop (reference frozen at the
measured pose in the service callback, i.e. by the next 1 kHz cycle) or error (a reflex, control exception or lost
link: the tracker is gone and nothing moves until `arm/recover`). A lost link is reported and retried in the
background; `arm/recover` clears reflexes and returns to ready (if enabled) or disabled.
"""
from __future__ import annotations

import numpy as np
import rclpy
from rclpy.node import Node

from robot_rl.configs.arm import ArmConfig
from robot_rl.core.executor import Tick
from robot_rl.hardware.franka import ArmFault
from robot_rl.hardware.franka_robot import FrankaRobot
from robot_rl.nodes.driver_base import ArmDriver, ResetRefused
from robot_rl.ros.node_runtime import declare_config, run_node


class ArmNode(ArmDriver, Node):
    def __init__(self):
        super().__init__("arm")
        self.cfg = declare_config(self, ArmConfig)
        self._start_driver(FrankaRobot(self.cfg.robot, self.cfg.safety))
        self.arm = self.robot.arm
        self.resets = 0
        try:
            self.arm.connect()
            self.robot.read()
            self.get_logger().info(f"arm up: {self.cfg.robot.host} realtime={self.cfg.robot.realtime} "
                                   f"control={self.cfg.control_hz} Hz")
        except ArmFault as fault:
            self._fault(fault)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ---- holding and faults ----------------------------------------------------------------------------------------
    def _hold_here(self, keep_tracking: bool) -> None:
        """Freeze the reference at the measured pose (next 1 kHz cycle); with keep_tracking=False end the tracker."""
        self.chunk_executor.reset(self._now())
        try:
            self.robot.hold(keep_tracking)
        except ArmFault as fault:
            self._fault(fault)

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
    def _reset(self, repeat: dict | None) -> dict:
        """Ramp the joint tracker to `robot.home`, publishing observations meanwhile (this callback holds the
        executor); the robot is left idle again if the arm is disabled. A repeat (driver_base.ArmDriver.on_reset)
        keeps its seed but ramps home again: a disabled arm can be moved by hand, the episode's answer promises the
        arm at home, and at home already the ramp ends at once."""
        if self.state in ("estop", "error") or not self.arm.connected:
            raise ResetRefused(f"arm is in {self.state} ({self.message}): call arm/recover first")
        self.chunk_executor.reset(self._now())
        try:
            self.robot.move_home(self.enabled, self.cfg.state_hz, lambda: self._publish_observation(self._now()))
        except ArmFault as fault:
            self._fault(fault)
            raise ResetRefused(str(fault)) from None
        if repeat is not None:
            return repeat
        self.resets += 1
        return {"seed": self.resets - 1, "task": self.cfg.task}

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
            self.robot.read()
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

    def _publish_observation(self, now: float) -> None:
        if not self.arm.connected:
            return  # no stale state is published while the link is down
        try:
            state = self.robot.read()
            if self.state == "ready":
                self.arm.relimit(state.q)
        except ArmFault as fault:
            self._fault(fault)
            return
        self._publish_state(now, self.robot.joints(), np.r_[state.dq, 0.0], state.ee_position, state.ee_quat_wxyz)

    def _status_message(self) -> str:
        return self.robot.describe(self.message)

    def close(self) -> None:
        self.robot.close()


def main(args=None) -> None:
    raise SystemExit(run_node(ArmNode, args))


if __name__ == "__main__":
    main()
