"""MuJoCo bridge node: stands in for the cameras and the Franka arm with the same topics and services.

It owns the simulation clock: physics at 500 Hz, `/clock` published every control tick, every message stamped with
sim time. Incoming chunks go through the same SafetyFilter and ChunkExecutor the real arm node uses
(robot_rl/nodes/driver_base.py; the simulated robot behind it: robot_rl/sim/sim_robot.py).

With `lockstep: true` (the default for CI and learning) the bridge, when a control tick has no action due, waits
(wall-clock bounded) for the policy's chunk before stepping on, so results depend on sim steps, not on machine load.
With `lockstep: false` it paces sim time to wall time times `realtime_factor`, like a real robot.
"""
from __future__ import annotations

import time

import rclpy
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String

from robot_rl.configs.bridge import BridgeConfig
from robot_rl.core.executor import Tick
from robot_rl.hardware.camera import Intrinsics
from robot_rl.nodes.driver_base import ArmDriver
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, run_node
from robot_rl.sim import PandaSim
from robot_rl.sim.sim_robot import SimRobot


class MujocoBridgeNode(ArmDriver, Node):
    def __init__(self):
        super().__init__("mujoco_bridge")
        self.cfg = declare_config(self, BridgeConfig)
        cfg = self.cfg
        cams = {c: (cfg.camera_width, cfg.camera_height) for c in cfg.camera_names}
        self.sim = PandaSim(task=cfg.task, variant=cfg.model_variant, cameras=cams, render=cfg.camera_hz > 0)
        self.pub_images = {c: contract.publisher(self, contract.camera_image(c)) for c in cfg.camera_names}
        self.pub_infos = {c: contract.publisher(self, contract.camera_info(c)) for c in cfg.camera_names}
        self._start_driver(SimRobot(self.sim, cfg.safety))
        self.pub_task = contract.publisher(self, contract.TASK_STATE)
        self.pub_clock = contract.publisher(self, contract.CLOCK)

        self.resets = 0
        self._reset_sim()
        self.resets = 0  # the first arm/reset starts episode 0 with `seed` again
        self.first_tick, self.ticks = self.sim.time, 0
        self.next_camera = self.sim.time
        self.next_status = self.sim.time
        self.get_logger().info(
            f"bridge up: task={cfg.task} variant={cfg.model_variant} control={cfg.control_hz} Hz "
            f"physics={1 / self.sim.physics_dt:.0f} Hz lockstep={cfg.lockstep}"
        )

    # ---- state ---------------------------------------------------------------------------------------------
    def _reset_sim(self) -> int:
        seed = self.cfg.seed + (0 if self.cfg.fixed_scene else self.resets)
        self.resets += 1
        self.robot.reset(seed)
        self.chunk_executor.reset(self.sim.time)
        for cam in self.cfg.camera_names:  # intrinsics are latched; re-sent on reset for late joiners' benefit
            intr = Intrinsics.ideal(self.cfg.camera_width, self.cfg.camera_height, self.sim.camera_fovy(cam),
                                    vertical=True)
            self.pub_infos[cam].publish(convert.camera_info_msg(intr, self.sim.time, f"{cam}_optical_frame"))
        return seed

    def _hold_here(self) -> None:
        """Freeze the target at the measured position (e-stop, faults)."""
        self.robot.hold()
        self.chunk_executor.reset(self.sim.time)

    # ---- callbacks -----------------------------------------------------------------------------------------
    def _reset(self, repeat: dict | None) -> dict:
        """A new scene, seeded `seed` + the resets so far (`seed` itself with `fixed_scene`); a repeat
        (driver_base.ArmDriver.on_reset) leaves the scene that reset made: the disabled arm has held still in it
        since."""
        if repeat is not None:
            return repeat
        return {"seed": self._reset_sim(), "task": self.cfg.task}

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

    def _on_command_error(self, err: Exception) -> None:
        """A fault while commanding: stop here, like a reflex on the real arm."""
        self._hold_here()
        self.state = "error"
        self.message = f"{type(err).__name__}: {err}"
        self.get_logger().error(f"arm error, holding position until arm/recover: {err}")
        self._publish_status()

    def _publish_observation(self) -> None:
        t = self.sim.time
        if self.cfg.camera_hz > 0 and t >= self.next_camera - 1e-9:
            for cam, pub in self.pub_images.items():
                pub.publish(convert.image_to_msg(self.sim.render(cam), t, f"{cam}_optical_frame"))
            self.next_camera += 1.0 / self.cfg.camera_hz
            self.next_camera = max(self.next_camera, t)
        task_state = self.sim.task_state()
        self.pub_task.publish(String(data=records.encode(records.TaskState(
            stamp=t, task=self.cfg.task, success=bool(task_state["success"]), state=task_state))))
        self._publish_state(t, self.sim.joint_positions(), self.sim.joint_velocities(), *self.sim.ee_pose())
        self.pub_clock.publish(Clock(clock=convert.to_time(t)))
        if t >= self.next_status:
            self._publish_status()
            self.next_status = t + 1.0 / self.cfg.status_hz

    def close(self) -> None:
        self.sim.close()


def main(args=None) -> None:
    raise SystemExit(run_node(MujocoBridgeNode, args))


if __name__ == "__main__":
    main()
