"""Teleop node: keyboard / gamepad / SpaceMouse -> end-effector delta actions and episode buttons.

While a human drives, every control tick (each `joint_states` stamp t, at most `control_hz`) gets a one-point
chunk on `action_chunk`: EE deltas (EE_SPACE_NAMES) stamped t, `source` = "teleop", so the arm / bridge executes it
and reports it on `executed_action` as an intervention. `teleop/active` (latched Bool) says when a human drives;
the policy node stops planning meanwhile.

Modes: `intervene` (the policy drives; the take-over button toggles human control, which ends with the episode) and
`collect` (the human drives every running episode: demonstrations).
Buttons: start / stop / success / failure call the episode services; re-record calls `recorder/discard` (the
recorder drops the episode), then `episode/stop` and `episode/start`.
"""
from __future__ import annotations

from collections import deque

import numpy as np
from pydantic import BaseModel, Field
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from robot_rl.core.types import EE_SPACE_NAMES, ActionChunk
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, decode_or_log, run_node
from robot_rl.teleop import Gamepad, GamepadMap, Keyboard, KeyMap, SpaceMouse, TeleopInput, TerminalKeys
from robot_rl.teleop import ee_delta

EVENT_SERVICES = {"start": ["episode/start"], "stop": ["episode/stop"], "success": ["episode/mark_success"],
                  "failure": ["episode/mark_failure"],
                  "rerecord": ["recorder/discard", "episode/stop", "episode/start"]}


class TeleopConfig(BaseModel, extra="forbid"):
    devices: list[str] = Field(["keyboard"], description="any of keyboard, gamepad, spacemouse (inputs are summed)")
    mode: str = Field("intervene", pattern="^(intervene|collect)$")
    control_hz: float = Field(15.0, gt=0)
    max_step_m: float = Field(0.01, gt=0, le=0.05, description="translation per control step at full deflection")
    max_step_rad: float = Field(0.06, gt=0, le=0.3, description="rotation per control step at full deflection")
    gripper_open_m: float = Field(0.08, ge=0)
    gripper_closed_m: float = Field(0.0, ge=0)
    poll_hz: float = Field(100.0, gt=0)
    hold_s: float = Field(0.15, gt=0, description="keyboard: a key press moves this long")
    keys: KeyMap = KeyMap()
    gamepad: GamepadMap = GamepadMap()


CONFIG = TeleopConfig


def open_devices(cfg: TeleopConfig) -> tuple[list, list[str]]:
    """The configured devices; one that cannot open is reported and skipped (the node keeps its buttons)."""
    devices, errors = [], []
    for name in cfg.devices:
        try:
            if name == "keyboard":
                devices.append(Keyboard(TerminalKeys(), cfg.keys, cfg.hold_s))
            elif name == "gamepad":
                devices.append(Gamepad(cfg.gamepad))
            elif name == "spacemouse":
                devices.append(SpaceMouse())
            else:
                errors.append(f"unknown device {name!r} (keyboard, gamepad, spacemouse)")
        except OSError as err:
            errors.append(f"{name}: {err}")
    return devices, errors


class TeleopNode(Node):
    def __init__(self, device_factory=open_devices, **node_kwargs):
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
        self.calls: deque[str] = deque()
        self.call_in_flight = None

        self.pub_chunk = self.create_publisher(contract.ACTION_CHUNK.msg_type, contract.ACTION_CHUNK.name,
                                               contract.ACTION_CHUNK.qos)
        self.pub_active = self.create_publisher(Bool, contract.TELEOP_ACTIVE.name, contract.TELEOP_ACTIVE.qos)
        self.create_subscription(JointState, contract.JOINT_STATES.name, self.on_joints, contract.JOINT_STATES.qos)
        self.create_subscription(String, contract.EPISODE_STATUS.name, self.on_status, contract.EPISODE_STATUS.qos)
        self.service_clients = {name: self.create_client(Trigger, name)
                         for names in EVENT_SERVICES.values() for name in names}
        self.pub_active.publish(Bool(data=False))
        self.create_timer(1.0 / cfg.poll_hz, self.poll)
        names = ", ".join(d.name for d in self.devices) or "none"
        keys = cfg.keys
        self.get_logger().info(
            f"teleop ({cfg.mode}) devices: {names}. Keys: move {keys.x_plus}{keys.x_minus} {keys.y_plus}{keys.y_minus} "
            f"{keys.z_plus}{keys.z_minus}, rotate {keys.roll_plus}{keys.roll_minus} {keys.pitch_plus}"
            f"{keys.pitch_minus} {keys.yaw_plus}{keys.yaw_minus}, gripper {keys.gripper}, start {keys.start}, "
            f"stop {keys.stop}, success {keys.success}, failure {keys.failure}, re-record {keys.rerecord}, "
            f"take over {keys.takeover}")

    # ---- inputs -------------------------------------------------------------------------------------------------
    def poll(self) -> None:
        merged = TeleopInput()
        for device in self.devices:
            try:
                got = device.poll()
            except (OSError, RuntimeError) as err:  # unplugged: hidapi raises OSError, pygame.error is a RuntimeError
                self.get_logger().error(f"{device.name}: {err}; its input counts as zero (hold)",
                                        throttle_duration_sec=2.0)
                continue
            merged.twist = merged.twist + got.twist
            merged.gripper_toggle ^= got.gripper_toggle
            merged.events += got.events
        self.twist = np.clip(merged.twist, -1.0, 1.0)
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
        name = self.calls.popleft()
        client = self.service_clients[name]
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
