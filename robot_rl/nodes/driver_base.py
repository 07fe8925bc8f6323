"""What every driver of the arm contract shares (the Franka arm node; the MuJoCo bridge can mix it in the same way):
chunk intake through the SafetyFilter into the ChunkExecutor, one point (or a hold) per control tick, and the
`executed_action` and `arm/status` publications.

A node that mixes in `ArmDriver` calls `_serve_arm_contract()`, sets `safety`, `chunk_executor`, `period`, `state`,
`message`, `last_rejection` and `hold_action`, and implements `_now()`, `_current_joints()`,
`_command(names, values) -> (names, executed)`, `_on_command_error(err)`, `_on_enabled(enabled)` and the
`on_reset|on_stop|on_recover` service callbacks.
"""
from __future__ import annotations

import numpy as np
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_rl.core.executor import Tick
from robot_rl.core.types import ActionChunk
from robot_rl.ros import contract, convert, records


def executor_report(s) -> dict[str, float]:
    """Executor counters plus lateness percentiles (ms) of the recent executed points against their schedule."""
    report = {"chunks": s.chunks, "points_executed": s.points_executed, "points_dropped_late": s.points_dropped_late,
              "points_skipped": s.points_skipped, "ticks_watchdog": s.ticks_watchdog}
    if s.lateness:
        late = np.abs(np.asarray(s.lateness)) * 1e3
        report.update(lateness_p50_ms=float(np.percentile(late, 50)), lateness_p99_ms=float(np.percentile(late, 99)),
                      lateness_max_ms=float(late.max()))
    return report


class ArmDriver:
    watchdog = False  # holding because actions stopped coming (published in arm/status as soon as it changes)

    def _serve_arm_contract(self) -> None:
        """The contract's arm publishers, the action_chunk subscription and the arm/* services."""
        for attr, topic in (("pub_joints", contract.JOINT_STATES), ("pub_pose", contract.EE_POSE),
                            ("pub_executed", contract.EXECUTED_ACTION), ("pub_status", contract.ARM_STATUS)):
            setattr(self, attr, self.create_publisher(topic.msg_type, topic.name, topic.qos))
        self.create_subscription(JointTrajectory, contract.ACTION_CHUNK.name, self.on_chunk, contract.ACTION_CHUNK.qos)
        self.create_service(Trigger, "arm/reset", self.on_reset)
        self.create_service(Trigger, "arm/stop", self.on_stop)
        self.create_service(Trigger, "arm/recover", self.on_recover)
        self.create_service(SetBool, "arm/enable", self.on_enable)

    def on_enable(self, req, resp):
        """arm/enable: refused in estop/error (arm/recover first); the node holds or releases in `_on_enabled`."""
        if self.state in ("estop", "error"):
            resp.success, resp.message = False, f"arm is in {self.state} ({self.message}): call arm/recover first"
            return resp
        self.enabled = bool(req.data)
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
            verdict = self.safety.check_chunk(chunk, now, self._current_joints())
        except Exception as err:  # e.g. the robot's forward kinematics without a link
            self._on_command_error(err)
            return
        if not verdict.ok:
            self._reject(verdict.reason, counted=True)
            return
        self.chunk_executor.submit(chunk, now)

    def _reject(self, reason: str, counted: bool = False) -> None:
        if not counted:
            self.safety.rejections[reason.split(":")[0]] += 1
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
            names, values = self.hold_action
            self._publish_executed(names, values, "hold")
            return
        try:
            names, executed = self._command(tick.point.names, tick.point.values)
        except Exception as err:  # a fault while commanding: the node stops, like a reflex
            self._on_command_error(err)
            return
        self._publish_executed(names, executed, tick.point.source)

    def _publish_executed(self, names: tuple[str, ...], values: np.ndarray, source: str) -> None:
        chunk = ActionChunk(self._now() - self.period, self.period, names, np.asarray(values)[None, :], source)
        self.pub_executed.publish(convert.chunk_to_msg(chunk))  # stamp = tick time, the one point at +dt

    def _status_message(self) -> str:
        return self.message

    def _publish_status(self) -> None:
        report = self.safety.report()
        status = records.ArmStatus(
            stamp=self._now(), state=self.state, message=self._status_message(), rejected=report["rejected"],
            clipped=report["clipped"], last_rejection=self.last_rejection,
            executor=executor_report(self.chunk_executor.stats), watchdog=self.watchdog and self.state == "ready",
        )
        self.pub_status.publish(String(data=records.encode(status)))
