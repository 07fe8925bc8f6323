"""Teleop node parameters (robot_rl.nodes.teleop), importable without pygame or a SpaceMouse library."""
from __future__ import annotations

from pydantic import BaseModel, Field

from robot_rl.core.types import CONTROL_HZ
from robot_rl.teleop.devices import GamepadMap, KeyMap


class TeleopConfig(BaseModel, extra="forbid"):
    devices: list[str] = Field(["keyboard"], description="any of keyboard, gamepad, spacemouse (inputs are summed)")
    mode: str = Field("intervene", pattern="^(intervene|collect)$")
    control_hz: float = Field(CONTROL_HZ, gt=0)
    max_step_m: float = Field(0.01, gt=0, le=0.05, description="translation per control step at full deflection")
    max_step_rad: float = Field(0.06, gt=0, le=0.3, description="rotation per control step at full deflection")
    gripper_open_m: float = Field(0.08, ge=0)
    gripper_closed_m: float = Field(0.0, ge=0)
    poll_hz: float = Field(100.0, gt=0)
    hold_s: float = Field(0.15, gt=0, description="keyboard: a key press moves this long")
    keys: KeyMap = KeyMap()
    gamepad: GamepadMap = GamepadMap()
