"""Teleoperation input devices (keyboard, gamepad, SpaceMouse) and their mapping to end-effector actions (no ROS)."""
from robot_rl.teleop.devices import (EVENTS, Gamepad, GamepadMap, InputDevice, Keyboard, KeyMap, QueueKeys, SpaceMouse,
                                     TeleopInput, TerminalKeys, ee_delta, open_devices, poll_all)

__all__ = ["EVENTS", "Gamepad", "GamepadMap", "InputDevice", "KeyMap", "Keyboard", "QueueKeys", "SpaceMouse",
           "TeleopInput", "TerminalKeys", "ee_delta", "open_devices", "poll_all"]
