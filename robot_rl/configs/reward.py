"""Reward node parameters (robot_rl.nodes.reward): the reward source's (robot_rl/rewards/params.py) and the node's
frame queue, importable without torch."""
from __future__ import annotations

from pydantic import Field

from robot_rl.rewards.params import SourceConfig


class RewardConfig(SourceConfig, extra="forbid"):
    max_pending_frames: int = Field(600, ge=1, description="frames kept while the episode's guidance is made")
