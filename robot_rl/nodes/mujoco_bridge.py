"""MuJoCo bridge node: stands in for the cameras and the Franka arm with the same topics and services.

It owns the simulation clock: physics at 500 Hz, `/clock` published every control tick, every message stamped with
sim time. Incoming chunks go through the same SafetyFilter and ChunkExecutor the real arm node uses.

With `lockstep: true` (the default for CI and learning) the bridge, when a control tick has no action due, waits
(wall-clock bounded) for the policy's chunk before stepping on, so results depend on sim steps, not on machine load.
With `lockstep: false` it paces sim time to wall time times `realtime_factor`, like a real robot.
"""
from __future__ import annotations

import json
import time

import numpy as np
import rclpy
from pydantic import BaseModel, Field
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String

from robot_rl.core.executor import ChunkExecutor, Tick
from robot_rl.core.safety import SafetyFilter, SafetyLimits
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES
from robot_rl.nodes.driver_base import ArmDriver
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, run_node
from robot_rl.sim import PandaSim


class BridgeConfig(BaseModel, extra="forbid"):
    task: str = "reach"
    model_variant: str = Field("primitive", pattern="^(primitive|mesh)$")
    seed: int = 0
    control_hz: float = Field(15.0, gt=0, le=500)
    camera_names: list[str] = ["front", "wrist"]
    camera_width: int = Field(128, ge=16, le=1920)
    camera_height: int = Field(128, ge=16, le=1080)
    camera_hz: float = Field(15.0, ge=0, le=120, description="0 disables rendering")
    lockstep: bool = True
    lockstep_timeout_s: float = Field(2.0, gt=0, description="wall seconds to wait for a chunk before holding")
    realtime_factor: float = Field(1.0, gt=0, description="pace when not in lockstep (and while disabled)")
    watchdog_periods: float = Field(3.0, ge=1, description="hold position after this many ticks without an action")
    ensemble_weight: float | None = Field(None, gt=0, le=1)
    status_hz: float = Field(2.0, gt=0)
    safety: SafetyLimits = SafetyLimits()


CONFIG = BridgeConfig


class MujocoBridgeNode(ArmDriver, Node):
    def __init__(self):
        super().__init__("mujoco_bridge")
        self.cfg = declare_config(self, BridgeConfig)
        cfg = self.cfg
        cams = {c: (cfg.camera_width, cfg.camera_height) for c in cfg.camera_names}
        self.sim = PandaSim(task=cfg.task, variant=cfg.model_variant, cameras=cams, render=cfg.camera_hz > 0)
        self.period = 1.0 / cfg.control_hz
        lower, upper = self.sim.joint_limits()
        self.safety = SafetyFilter(cfg.safety, lower, upper, forward_kinematics=self._tcp_position)
        self.chunk_executor = ChunkExecutor(self.period, cfg.watchdog_periods * self.period, cfg.ensemble_weight)
        self.resets = 0
        self.enabled = False
        self.state = "disabled"
        self.last_rejection = ""
        self.message = ""

        self.pub_images = {c: self._pub(contract.camera_image(c)) for c in cfg.camera_names}
        self.pub_infos = {c: self._pub(contract.camera_info(c)) for c in cfg.camera_names}
        self._serve_arm_contract()
        self.pub_task = self._pub(contract.TASK_STATE)
        self.pub_clock = self._pub(contract.CLOCK)

        self._reset_sim()
        self.resets = 0  # the first arm/reset starts episode 0 with `seed` again
        self.first_tick, self.ticks = self.sim.time, 0
        self.next_camera = self.sim.time
        self.next_status = self.sim.time
        self.get_logger().info(
            f"bridge up: task={cfg.task} variant={cfg.model_variant} control={cfg.control_hz} Hz "
            f"physics={1 / self.sim.physics_dt:.0f} Hz lockstep={cfg.lockstep}"
        )

    def _pub(self, topic: contract.Topic):
        return self.create_publisher(topic.msg_type, topic.name, topic.qos)

    def _tcp_position(self, q: np.ndarray) -> np.ndarray:
        return self.sim.tcp_position_at(q)

    # ---- state ---------------------------------------------------------------------------------------------
    def _reset_sim(self) -> int:
        seed = self.cfg.seed + self.resets
        self.resets += 1
        clock = self.sim.time
        self.sim.reset(seed)
        self.sim.data.time = clock  # the robot clock never goes backwards, episodes just restart the task
        self._hold_here()
        for cam in self.cfg.camera_names:  # intrinsics are latched; re-sent on reset for late joiners' benefit
            w, h = self.cfg.camera_width, self.cfg.camera_height
            info = convert.camera_info_msg(w, h, self.sim.camera_fovy(cam), self.sim.time, f"{cam}_optical_frame")
            self.pub_infos[cam].publish(info)
        return seed

    def _hold_here(self) -> None:
        """Freeze the target at the measured position (e-stop, faults)."""
        self.joint_target = self.sim.joint_positions()
        self.sim.set_joint_target(self.joint_target[:7], self.joint_target[7])
        self.sim.set_commanded_ee_target(*self.sim.ee_pose())
        self.chunk_executor.reset(self.sim.time)
        self.hold_action = (JOINT_SPACE_NAMES, self.joint_target)

    # ---- callbacks -----------------------------------------------------------------------------------------
    def on_reset(self, _req, resp):
        seed = self._reset_sim()
        resp.success = True
        resp.message = json.dumps({"seed": seed, "task": self.cfg.task, "stamp": self.sim.time})
        return resp

    def on_stop(self, _req, resp):
        self._hold_here()
        self.state = "estop"
        self.message = "e-stop requested"
        self._publish_status()
        resp.success, resp.message = True, "e-stop: holding position; call arm/recover to resume"
        return resp

    def on_recover(self, _req, resp):
        was = self.state
        self._hold_here()
        self.state = "ready" if self.enabled else "disabled"
        self.message = ""
        self._publish_status()
        resp.success, resp.message = True, f"recovered from {was}; now {self.state}"
        return resp

    def _on_enabled(self, enabled: bool) -> None:
        if not enabled:
            self._hold_here()

    # ---- main loop -----------------------------------------------------------------------------------------
    def loop(self, executor) -> None:
        wall_start, sim_start = time.monotonic(), self.sim.time
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.0)
            if not (self.cfg.lockstep and self.state == "ready"):
                ahead = (self.sim.time - sim_start) / self.cfg.realtime_factor - (time.monotonic() - wall_start)
                if ahead > 0:
                    executor.spin_once(timeout_sec=ahead)
            else:
                wall_start, sim_start = time.monotonic(), self.sim.time
            self._publish_observation()
            if self.cfg.lockstep and self.state == "ready" and not self._action_due():
                self._wait_for_chunk(executor)
            self._apply(self.chunk_executor.tick(self.sim.time) if self.state == "ready" else Tick("idle"))
            self.ticks += 1  # ticks on an absolute schedule: rounding to physics steps never accumulates
            while self.sim.time < self.first_tick + self.ticks * self.period - 1e-9:
                self.sim.step()

    def _action_due(self) -> bool:
        queue = self.chunk_executor.queue
        return bool(queue) and queue[0].issue_time <= self.sim.time + 0.5 * self.period

    def _wait_for_chunk(self, executor) -> None:
        deadline = time.monotonic() + self.cfg.lockstep_timeout_s
        while time.monotonic() < deadline and self.state == "ready":
            executor.spin_once(timeout_sec=0.01)
            if self._action_due():
                return

    def _now(self) -> float:
        return self.sim.time

    def _current_joints(self) -> np.ndarray:
        return self.sim.joint_positions()

    def _on_command_error(self, err: Exception) -> None:
        """A fault while commanding: stop here, like a reflex on the real arm."""
        self._hold_here()
        self.state = "error"
        self.message = f"{type(err).__name__}: {err}"
        self.get_logger().error(f"arm error, holding position until arm/recover: {err}")
        self._publish_status()

    def _command(self, names: tuple[str, ...], values: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        if names == EE_SPACE_NAMES:
            if self.hold_action[0] != EE_SPACE_NAMES:  # after joint-space commands: continue from the measured pose
                self.sim.set_commanded_ee_target(*self.sim.ee_pose())
            delta = self.safety.limit_ee_delta(values)
            q, width = self.sim.apply_ee_delta(delta, clip_position=self.safety.limit_ee_target)
            target = self.safety.limit_joint_target(np.append(q, width), self.joint_target)
            executed = delta
            self.hold_action = (EE_SPACE_NAMES, np.r_[np.zeros(6), delta[6]])
        else:
            target = self.safety.limit_joint_target(values, self.joint_target)
            executed = target
            self.hold_action = (JOINT_SPACE_NAMES, target)
        self.joint_target = target
        self.sim.set_joint_target(target[:7], target[7])
        return names, executed

    def _publish_observation(self) -> None:
        t = self.sim.time
        stamp = convert.to_time(t)
        if self.cfg.camera_hz > 0 and t >= self.next_camera - 1e-9:
            for cam, pub in self.pub_images.items():
                pub.publish(convert.image_to_msg(self.sim.render(cam), t, f"{cam}_optical_frame"))
            self.next_camera += 1.0 / self.cfg.camera_hz
            self.next_camera = max(self.next_camera, t)
        task_state = self.sim.task_state()
        self.pub_task.publish(String(data=records.encode(records.TaskState(
            stamp=t, task=self.cfg.task, success=bool(task_state["success"]), state=task_state))))
        pos, quat = self.sim.ee_pose()
        self.pub_pose.publish(convert.pose_msg(pos, quat, t, "panda_link0"))
        self.pub_joints.publish(convert.joint_state_msg(
            JOINT_SPACE_NAMES, self.sim.joint_positions(), self.sim.joint_velocities(), t))
        self.pub_clock.publish(Clock(clock=stamp))
        if t >= self.next_status:
            self._publish_status()
            self.next_status = t + 1.0 / self.cfg.status_hz

    def close(self) -> None:
        self.sim.close()



def main(args=None) -> None:
    raise SystemExit(run_node(MujocoBridgeNode, args))


if __name__ == "__main__":
    main()
