"""The learner node's parameters (robot_rl.nodes.learner), free of torch and rclpy so a graph validates without them."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from robot_rl.core.types import CONTROL_HZ
from robot_rl.rl.config import POCOConfig


class LearnerConfig(BaseModel, extra="forbid"):
    checkpoint: str = Field("", description="directory of the pretrained policy (policy.safetensors + config.json)")
    dataset: str = Field("", description="LeRobot v3 dataset root of the offline demonstrations")
    output_dir: str = "runs/learner"
    control_hz: float = Field(CONTROL_HZ, gt=0)
    seed: int = 0
    policy_sync: Literal["each_episode", "continuous"] = Field(
        "each_episode", description="each_episode: an ended episode's updates run, then their weights are published "
        "and the next episode starts on them (the robot waits for the learner). continuous: the updates run while "
        "the next episodes do, a new version every publish_every updates; the robot never waits, but at the end "
        "for the weights trained on every episode. The episode manager follows this value (one source per graph)")
    publish_every: int = Field(100, ge=1, description="continuous: updates between published versions")
    poco: POCOConfig = POCOConfig()
