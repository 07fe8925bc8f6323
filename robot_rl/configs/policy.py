"""The policy node's parameters (robot_rl.nodes.policy), free of torch and rclpy so a graph validates without them."""
from __future__ import annotations

from pydantic import BaseModel, Field

from robot_rl.core.types import CONTROL_HZ


class PolicyConfig(BaseModel, extra="forbid"):
    backend: str = Field("scripted", pattern="^(scripted|learned)$")
    checkpoint: str = Field("", description="learned backend: policy directory (policy.safetensors + config.json)")
    control_hz: float = Field(CONTROL_HZ, gt=0)
    horizon: int = Field(5, ge=1, le=128, description="points per published chunk (all of them are executed)")
    noise: float = Field(0.0, ge=0, description="scripted backend: expert noise")
    seed: int = 0
    stale_periods: float = Field(2.0, gt=0, description="a stream older than this many periods is stale")
    sync_wait_s: float = Field(0.05, ge=0, description="wall time to wait for every stream to reach t*")
