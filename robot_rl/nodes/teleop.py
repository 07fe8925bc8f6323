"""Teleop node: keyboard / gamepad / SpaceMouse -> end-effector delta actions and episode buttons.

While a human drives, every control tick (each `joint_states` stamp t, at most `control_hz`) gets a one-point
chunk on `action_chunk`: EE deltas (EE_SPACE_NAMES) stamped t, `source` = "teleop", so the arm / bridge executes it
and reports it on `executed_action` as an intervention. `teleop/active` (latched Bool) says when a human drives;
the policy node stops planning meanwhile.

Modes: `intervene` (the policy drives; during a running episode the take-over button toggles human control, which
ends with the episode) and `collect` (the human drives every running episode: demonstrations).
Buttons: start / stop / success / failure call the episode services; re-record calls `recorder/discard` (the
recorder drops the episode), then `episode/stop` and `episode/start`.
"""
from __future__ import annotations

from collections import deque

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from robot_rl.configs.teleop import TeleopConfig
from robot_rl.core.types import EE_SPACE_NAMES, ActionChunk
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, decode_or_log, run_node
from robot_rl.teleop import ee_delta, open_devices, poll_all

# Button -> the services it calls, in order (all Trigger).
EVENT_SERVICES = {"start": [contract.EPISODE_START], "stop": [contract.EPISODE_STOP],
                  "success": [contract.EPISODE_MARK_SUCCESS], "failure": [contract.EPISODE_MARK_FAILURE],
                  "rerecord": [contract.RECORDER_DISCARD, contract.EPISODE_STOP, contract.EPISODE_START]}


def open_configured_devices(cfg: TeleopConfig) -> tuple[list, list[str]]:
    return open_devices(cfg.devices, cfg.keys, cfg.hold_s, cfg.gamepad)


class TeleopNode(Node):
    def __init__(self, device_factory=open_configured_devices, **node_kwargs):
        super().__init__("teleop", **node_kwargs)
        self.cfg = declare_config(self, TeleopConfig)
        cfg = self.cfg
        cfg.keys.table()   # refuses duplicate / unknown keys before anything starts
        self.period = 1.0 / cfg.control_hz
        self.devices, errors = device_factory(cfg)
        for err in errors:
            self.get_logger().error(f"teleop device unavailable: {err}")
        self.twist = np.zeros(6)
        self.gripper_width: float | None = None   # commanded width; None: take the measured one
        self.measured_gripper: float | None = None
        self.running_episode: int | None = None
        self.active = False
        self.next_publish = -np.inf
        self.calls: deque[contract.Service] = deque()
        self.call_in_flight = None

        self.pub_chunk = contract.publisher(self, contract.ACTION_CHUNK)
        self.pub_active = contract.publisher(self, contract.TELEOP_ACTIVE)
        contract.subscribe(self, contract.JOINT_STATES, self.on_joints)
        contract.subscribe(self, contract.EPISODE_STATUS, self.on_status)
        self.service_clients = {service: contract.client(self, service)
                                for services in EVENT_SERVICES.values() for service in services}
        self.pub_active.publish(Bool(data=False))
        self.create_timer(1.0 / cfg.poll_hz, self.poll)
        names = ", ".join(d.name for d in self.devices) or "none"
        self.get_logger().info(f"teleop ({cfg.mode}) devices: {names}. Keys: {cfg.keys.describe()}")

    # ---- inputs -------------------------------------------------------------------------------------------------
    def poll(self) -> None:
        merged = poll_all(self.devices, lambda device, err: self.get_logger().error(
            f"{device.name}: {err}; its input counts as zero (hold)", throttle_duration_sec=2.0))
        self.twist = merged.twist
        if merged.gripper_toggle:
            closed = self.gripper_width is not None and abs(self.gripper_width - self.cfg.gripper_closed_m) < 1e-6
            self.gripper_width = self.cfg.gripper_open_m if closed else self.cfg.gripper_closed_m
        for event in merged.events:
            self.on_event(event)
        self.next_call()

    def on_event(self, event: str) -> None:
        self.get_logger().info(f"button: {event}")
        if event == "takeover":
            if self.cfg.mode == "collect":
                self.get_logger().info("collect mode: the human drives every episode already")
            elif not self.active and self.running_episode is None:
                # A take-over ends with its episode, so one pressed before any is running would end at once.
                self.get_logger().warning("take-over ignored: no episode is running (start one first)")
            else:
                self.set_active(not self.active)
        elif event in EVENT_SERVICES:
            self.calls.extend(EVENT_SERVICES[event])

    def next_call(self) -> None:
        """Service calls run one after another, in button order."""
        if self.call_in_flight is not None:
            name, future = self.call_in_flight
            if not future.done():
                return
            result = future.result()
            if result.success:
                self.get_logger().info(f"{name}: {result.message or 'ok'}")
            else:
                self.get_logger().warning(f"{name} refused: {result.message}")
            self.call_in_flight = None
        if not self.calls:
            return
        service = self.calls.popleft()
        name, client = service.name, self.service_clients[service]
        if not client.service_is_ready():
            self.get_logger().warning(f"service {name} is not available; call skipped")
            return
        self.call_in_flight = (name, client.call_async(Trigger.Request()))

    def on_status(self, msg: String) -> None:
        status = decode_or_log(self, msg.data, records.EpisodeStatus)
        if status is None:
            return
        self.running_episode = status.episode if status.state == "running" else None
        if self.cfg.mode == "collect":
            self.set_active(self.running_episode is not None)
        elif self.running_episode is None and self.active:
            self.set_active(False)   # a take-over ends with its episode

    def set_active(self, active: bool) -> None:
        if active == self.active:
            return
        self.active = active
        if active:
            self.gripper_width = self.measured_gripper   # take over without a gripper jump
        self.next_publish = -np.inf
        self.pub_active.publish(Bool(data=active))
        self.get_logger().info("human control" if active else "policy control")

    def on_joints(self, msg: JointState) -> None:
        if len(msg.position) >= 8:
            self.measured_gripper = float(msg.position[7])
        if not self.active or self.running_episode is None:
            return
        stamp = convert.from_time(msg.header.stamp)
        if stamp < self.next_publish - 0.5 * self.period:
            return
        if self.gripper_width is None:
            self.gripper_width = self.measured_gripper if self.measured_gripper is not None else self.cfg.gripper_open_m
        action = ee_delta(self.twist, self.gripper_width, self.cfg.max_step_m, self.cfg.max_step_rad)
        chunk = ActionChunk(stamp, self.period, EE_SPACE_NAMES, action[None, :], source="teleop")
        self.pub_chunk.publish(convert.chunk_to_msg(chunk))
        self.next_publish = stamp + self.period

    def close(self) -> None:
        for device in self.devices:
            device.close()


def main(args=None) -> None:
    raise SystemExit(run_node(TeleopNode, args))


if __name__ == "__main__":
    main()
