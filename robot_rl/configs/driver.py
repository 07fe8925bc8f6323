"""What both arm drivers are configured with: the Franka arm node (configs/arm.py) and the MuJoCo bridge
(configs/bridge.py) take chunks through the same executor and safety filter and report the same `arm/status`."""
from __future__ import annotations

from pydantic import BaseModel, Field

from robot_rl.core.safety import SafetyLimits
from robot_rl.core.types import CONTROL_HZ


class DriverConfig(BaseModel, extra="forbid"):
    control_hz: float = Field(CONTROL_HZ, gt=0, le=500)
    watchdog_periods: float = Field(3.0, ge=1, description="hold position after this many ticks without an action")
    ensemble_weight: float | None = Field(None, gt=0, le=1)
    status_hz: float = Field(2.0, gt=0)
    frame_id: str = Field("panda_link0", description="base frame of ee_pose")
    safety: SafetyLimits = SafetyLimits()
