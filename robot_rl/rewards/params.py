"""Reward parameters: DEG's and those of every reward source (pydantic only, so the reward node's configuration
loads without torch)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DEGParams(BaseModel):
    """Reward parameters with the spec's defaults (the DEG paper's; docs/rewards.md)."""

    model_config = ConfigDict(extra="forbid")
    coarse_threshold: float = Field(0.80, ge=-1, le=1, description="δ_c, loose cosine threshold of the pointer")
    fine_threshold: float = Field(0.92, ge=-1, le=1, description="δ_f, tight cosine threshold of the matching term")
    window: int = Field(8, ge=1, description="W, look-ahead of the pointer in guidance frames")
    alpha: float = Field(20.0, ge=0, description="α, scale of the dense reward")
    beta: float = Field(1.0, ge=0, description="β, weight of fine matching relative to coarse progress")
    fine_steps: float = Field(0.0, ge=0, description="r_f divisor (expected matched steps); 0 = mean expert "
                                                     "episode length stored with the model")


class ClassifierParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_path: str = Field("", description="directory written by `robot-rl reward train-classifier`")
    threshold: float = Field(0.5, gt=0, lt=1, description="success when confidence ≥ threshold")
    terminate_on_success: bool = True
    consecutive: int = Field(1, ge=1, description="frames in a row above threshold before success (debounce)")


class DEGSourceParams(DEGParams):
    model_path: str = Field("", description="directory written by `robot-rl deg train`")
    guidance: Literal["latent", "diffusion", "nearest"] = "latent"
    theta: float = Field(10.0, ge=0, description="θ, weight of the success reward in deg+")
    terminate_at_end: bool = Field(False, description="end the episode when the pointer reaches the last frame "
                                                      "(reward-free mode)")


class SourceConfig(BaseModel):
    """The `source` part of the reward node's parameters."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field("sim", pattern="^(sim|human|classifier|deg|deg\\+)$")
    success_source: str = Field("sim", pattern="^(sim|human|classifier)$", description="deg+: where success comes from")
    camera: str = "front"
    success_reward: float = 1.0
    step_penalty: float = -0.01
    classifier: ClassifierParams = ClassifierParams()
    deg: DEGSourceParams = DEGSourceParams()
