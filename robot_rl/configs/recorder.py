"""Recorder node parameters (robot_rl.nodes.recorder)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from robot_rl.core.types import CONTROL_HZ


class RecorderConfig(BaseModel, extra="forbid"):
    root: str = Field("runs/data/recorded", description="dataset root (appended to when it exists)")
    fps: float = Field(CONTROL_HZ, gt=0, le=120)
    cameras: list[str] = Field([], description="recorded cameras (cameras/<name>/image_raw)")
    image_width: int = Field(128, ge=8, le=1920)
    image_height: int = Field(128, ge=8, le=1080)
    action_space: str = Field("ee", pattern="^(ee|joint)$")
    task: str = Field("", description="task text; empty: the task named by episode/status")
    robot_type: str = "panda"
    num_episodes: int = Field(0, ge=0, description="exit after saving this many (0: until stopped)")
    stale_s: float = Field(0.5, gt=0, description="an image older than this at its frame time counts as stale")
    end_timeout_s: float = Field(10.0, ge=0, description="wall seconds at most to wait, after an episode ends, for "
                                                        "its last actions and reward records")
    bag: bool = Field(False, description="also write the raw topics to an MCAP bag under <root>/bags/")
    start_episodes: bool = Field(False, description="call episode/start once every recorded topic, reward "
                                                    "included, has a publisher (episode manager without autostart)")
