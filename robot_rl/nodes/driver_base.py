"""What both drivers of the arm contract share (the Franka arm node and the MuJoCo bridge): chunk intake through the
SafetyFilter into the ChunkExecutor, one point (or a hold) per control tick, the `joint_states` / `ee_pose` /
`executed_action` / `arm/status` publications and the `arm/*` services.

A node that mixes in `ArmDriver` has a DriverConfig as `cfg`, calls `_start_driver(robot)` with its ROS-free robot
(robot_rl/hardware/franka_robot.py or robot_rl/sim/sim_robot.py: `safety`, `hold_action`, `joints()`,
`command(names, values) -> executed`), and implements `_now()`, `_on_command_error(err)`, `_on_enabled(enabled)`,
`_reset(repeat)` (arm/reset's own work, see `on_reset`) and the `on_stop|on_recover` service callbacks.
"""
from __future__ import annotations

import json

import numpy as np
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from robot_rl.core.executor import ChunkExecutor, Tick
from robot_rl.core.types import JOINT_SPACE_NAMES, ActionChunk
from robot_rl.ros import contract, convert, records


def executor_report(s) -> dict[str, float]:
    """Executor counters plus lateness percentiles (ms) of the recent executed points against their schedule."""
    report = {"chunks": s.chunks, "points_executed": s.points_executed, "points_dropped_late": s.points_dropped_late,
              "points_skipped": s.points_skipped, "ticks_idle": s.ticks_idle, "ticks_watchdog": s.ticks_watchdog}
    if s.lateness:
        late = np.abs(np.asarray(s.lateness)) * 1e3
        report.update(lateness_p50_ms=float(np.percentile(late, 50)), lateness_p99_ms=float(np.percentile(late, 99)),
                      lateness_max_ms=float(late.max()))
    return report


class ResetRefused(Exception):
    """Raised by a driver's `_reset`: arm/reset fails with this message."""


class ArmDriver:
    watchdog = False  # holding because actions stopped coming (published in arm/status as soon as it changes)
    last_reset: dict | None = None  # {seed, task} of the last reset of the disabled arm, until it is next enabled

    def _start_driver(self, robot) -> None:
        """Disabled until arm/enable; the executor at control_hz; the contract's publishers, chunk intake, services."""
        cfg = self.cfg
        self.robot = robot
        self.period = 1.0 / cfg.control_hz
        self.chunk_executor = ChunkExecutor(self.period, cfg.watchdog_periods * self.period, cfg.ensemble_weight)
        self.enabled, self.state, self.message, self.last_rejection = False, "disabled", "", ""
        self.pub_joints = contract.publisher(self, contract.JOINT_STATES)
        self.pub_pose = contract.publisher(self, contract.EE_POSE)
        self.pub_executed = contract.publisher(self, contract.EXECUTED_ACTION)
        self.pub_status = contract.publisher(self, contract.ARM_STATUS)
        contract.subscribe(self, contract.ACTION_CHUNK, self.on_chunk)
        for service, callback in ((contract.ARM_RESET, self.on_reset), (contract.ARM_STOP, self.on_stop),
                                  (contract.ARM_RECOVER, self.on_recover), (contract.ARM_ENABLE, self.on_enable)):
            contract.serve(self, service, callback)

    def on_reset(self, _req, resp):
        """arm/reset, answered with JSON {seed, task, stamp}: the driver's `_reset(repeat)` readies the arm for a new
        episode and returns its {seed, task}; `stamp` is the robot clock after it (the episode starts from there).

        The episode manager sends a reset again when its answer does not come (a DDS service response can be lost),
        so a reset of an arm that has not been enabled since its last reset is a repeat: `_reset` gets that reset's
        {seed, task} as `repeat` and returns them again without advancing the seed counter, and the episode keeps its
        scene. Only a reset made while disabled is kept (an enabled arm moves on after it); a failed one is not."""
        repeat, self.last_reset = self.last_reset, None
        try:
            reply = self._reset(repeat)
        except ResetRefused as err:
            resp.success, resp.message = False, str(err)
            return resp
        if not self.enabled:
            self.last_reset = reply
        resp.success, resp.message = True, json.dumps({**reply, "stamp": self._now()})
        return resp

    def on_enable(self, req, resp):
        """arm/enable: refused in estop/error (arm/recover first); the node holds or releases in `_on_enabled`."""
        if self.state in ("estop", "error"):
            resp.success, resp.message = False, f"arm is in {self.state} ({self.message}): call arm/recover first"
            return resp
        self.enabled = bool(req.data)
        if self.enabled:
            self.last_reset = None  # the next arm/reset is a new one
        self.state = "ready" if self.enabled else "disabled"
        self._on_enabled(self.enabled)
        self._publish_status()
        resp.success, resp.message = self.state != "error", self.state
        return resp

    def on_chunk(self, msg: JointTrajectory) -> None:
        now = self._now()
        try:
            chunk = convert.msg_to_chunk(msg)
        except convert.ConversionError as err:
            self._reject(f"malformed: {err}")
            return
        if self.state != "ready":
            self._reject(f"not_ready: arm is {self.state}")
            return
        try:
            verdict = self.robot.safety.check_chunk(chunk, now, self.robot.joints())
        except Exception as err:  # e.g. the robot's forward kinematics without a link
            self._on_command_error(err)
            return
        if not verdict.ok:
            self._reject(verdict.reason, counted=True)
            return
        self.chunk_executor.submit(chunk, now)

    def _reject(self, reason: str, counted: bool = False) -> None:
        if not counted:
            self.robot.safety.rejections[reason.split(":")[0]] += 1
        self.last_rejection = reason
        self.get_logger().warning(f"chunk rejected: {reason}", throttle_duration_sec=1.0)
        self._publish_status()

    def _apply(self, tick: Tick) -> None:
        """Command this tick's point (or hold) and publish what was really commanded on `executed_action`."""
        if self.state != "ready":
            return
        watchdog = tick.status == "watchdog" and self.chunk_executor.executed_since_reset
        if watchdog != self.watchdog:
            self.watchdog = watchdog
            self._publish_status()
        if tick.point is None:  # hold: the same joint target, or a zero EE delta
            names, values = self.robot.hold_action
            self._publish_executed(names, values, "hold")
            return
        try:
            executed = self.robot.command(tick.point.names, tick.point.values)
        except Exception as err:  # a fault while commanding: the node stops, like a reflex
            self._on_command_error(err)
            return
        self._publish_executed(tick.point.names, executed, tick.point.source)

    def _publish_executed(self, names: tuple[str, ...], values: np.ndarray, source: str) -> None:
        # stamped with this tick, the time the point is issued at, as ActionChunk's rule has it (its target is one
        # period later): the learner pairs it with the observation of the same stamp, the recorder with its frame
        chunk = ActionChunk(self._now(), self.period, names, np.asarray(values)[None, :], source)
        self.pub_executed.publish(convert.chunk_to_msg(chunk))

    def _publish_state(self, stamp: float, joints, velocities, position, quat_wxyz) -> None:
        """ee_pose first: a policy that plans on a joint_states stamp then finds the pose of that stamp waiting."""
        self.pub_pose.publish(convert.pose_msg(position, quat_wxyz, stamp, self.cfg.frame_id))
        self.pub_joints.publish(convert.joint_state_msg(JOINT_SPACE_NAMES, joints, velocities, stamp))

    def _status_message(self) -> str:
        return self.message

    def _publish_status(self) -> None:
        report = self.robot.safety.report()
        status = records.ArmStatus(
            stamp=self._now(), state=self.state, message=self._status_message(), rejected=report["rejected"],
            clipped=report["clipped"], last_rejection=self.last_rejection,
            executor=executor_report(self.chunk_executor.stats), watchdog=self.watchdog and self.state == "ready",
        )
        self.pub_status.publish(String(data=records.encode(status)))
