"""The learner node's parameters (robot_rl.nodes.learner), free of torch and rclpy so a graph validates without them."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from robot_rl.configs import is_namespace
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
    robots: list[str] = Field([], description="the namespaces of the robots this learner serves, e.g. [robot1, "
                              "robot2] (a fleet graph sets them); empty: the robot in the learner's own namespace")
    poco: POCOConfig = POCOConfig()

    @field_validator("robots")
    @classmethod
    def _namespaces(cls, robots: list[str]) -> list[str]:
        robots = [r.strip("/") for r in robots]
        for r in robots:
            if not r or not is_namespace(r):
                raise ValueError(f"robot namespace {r!r} is not a valid ROS namespace")
        if len(set(robots)) != len(robots):
            raise ValueError(f"robot namespaces {robots} name a robot twice")
        return robots
