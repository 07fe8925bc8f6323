"""MuJoCo bridge parameters (robot_rl.nodes.mujoco_bridge)."""
from __future__ import annotations

from pydantic import Field

from robot_rl.configs.driver import DriverConfig


class BridgeConfig(DriverConfig):
    task: str = "reach"
    model_variant: str = Field("primitive", pattern="^(primitive|mesh)$")
    seed: int = 0
    fixed_scene: bool = Field(False, description="every reset makes the scene of `seed` (a one-scene learning run); "
                                                 "false: the scene of `seed` + the resets so far")
    camera_names: list[str] = ["front", "wrist"]
    camera_width: int = Field(128, ge=16, le=1920)
    camera_height: int = Field(128, ge=16, le=1080)
    camera_hz: float = Field(15.0, ge=0, le=120, description="0 disables rendering")
    lockstep: bool = True
    lockstep_timeout_s: float = Field(2.0, gt=0, description="wall seconds to wait for a chunk before holding")
    realtime_factor: float = Field(1.0, gt=0, description="pace when not in lockstep (and while disabled)")
