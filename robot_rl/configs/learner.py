"""The learner node's parameters (robot_rl.nodes.learner), free of torch and rclpy so a graph validates without them."""
from __future__ import annotations

from pydantic import BaseModel, Field

from robot_rl.core.types import CONTROL_HZ
from robot_rl.rl.config import POCOConfig


class LearnerConfig(BaseModel, extra="forbid"):
    checkpoint: str = Field("", description="directory of the pretrained policy (policy.safetensors + config.json)")
    dataset: str = Field("", description="LeRobot v3 dataset root of the offline demonstrations")
    output_dir: str = "runs/learner"
    control_hz: float = Field(CONTROL_HZ, gt=0)
    seed: int = 0
    poco: POCOConfig = POCOConfig()
