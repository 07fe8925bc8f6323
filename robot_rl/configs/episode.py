"""Episode manager parameters (robot_rl.nodes.episode_manager)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from robot_rl.core.types import CONTROL_HZ


class EpisodeConfig(BaseModel, extra="forbid"):
    num_episodes: int = Field(0, ge=0, description="0 = run until stopped")
    max_steps: int = Field(150, ge=1, description="control steps before the episode times out")
    control_hz: float = Field(CONTROL_HZ, gt=0)
    autostart: bool = True
    terminate_on_success: bool = True
    results_path: str = ""
    exit_when_done: bool = True
    policy_sync: Literal["off", "each_episode", "continuous"] = Field(
        "off", description="online RL, set from the learner's policy_sync: each_episode starts an episode only once "
        "the policy node runs weights newer than the last episode's; continuous waits before the first episode (for "
        "the learner's weights), when the learner is more than max_lag_episodes behind, and after the last (for "
        "weights trained on every episode)")
    max_lag_episodes: int = Field(1, ge=0, description="continuous: ended episodes whose updates may still be owed "
                                                       "when the next starts (a real robot at its control rate "
                                                       "rarely waits; a lockstep sim that outruns the learner "
                                                       "does, so its data stays near the policy being trained)")
    policy_wait_timeout_s: float = Field(600.0, gt=0, description="wall seconds; then start anyway, with a warning")
    reward_timeout_s: float = Field(0.0, ge=0, description="end the episode as interrupted when no reward record "
                                                          "came for this long, since its start or its newest one, "
                                                          "on the robot clock and on the wall clock (a stalled sim "
                                                          "clock is no reward outage); 0: off")
    service_retry_s: float = Field(15.0, gt=0, description="wall seconds an arm/reset or arm/enable call may go "
                                                          "unanswered before it is sent again (DDS can lose a "
                                                          "service response; the drivers answer a repeated reset "
                                                          "with the same seed, so a slow reset sent again is "
                                                          "harmless)")
