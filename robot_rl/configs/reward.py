"""Reward node parameters (robot_rl.nodes.reward): the reward source's (robot_rl/rewards/params.py) and the node's
frame queue, importable without torch."""
from __future__ import annotations

from pydantic import Field

from robot_rl.rewards.params import SourceConfig


class RewardConfig(SourceConfig, extra="forbid"):
    max_pending_frames: int = Field(600, ge=1, description="frames kept while the episode's guidance is made")
    setup_timeout_s: float = Field(60.0, gt=0, description="wall seconds the per-episode setup (DEG guidance) may take; "
                                                           "past it the episode gets no rewards (setup_failed in "
                                                           "reward/status) and the worker's stack is logged")
