"""Reward parameters: DEG's and those of every reward source (pydantic only, so the reward node's configuration
loads without torch)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DEGParams(BaseModel):
    """Reward parameters (docs/rewards.md). Thresholds default to the values calibrated with the encoder."""

    model_config = ConfigDict(extra="forbid")
    coarse_threshold: float | None = Field(None, ge=-1, le=1, description="δ_c, cosine the pointer needs to move; "
                                                                          "None = calibrated with the encoder")
    fine_threshold: float | None = Field(None, ge=-1, lt=1, description="δ_f, cosine where the fine match starts "
                                                                        "to pay; None = calibrated with the encoder")
    window: int = Field(2, ge=1, description="W, the pointer moves to the best match among frames m..m+W")
    alpha: float = Field(3.0, ge=0, description="α, dense return of a full pass along the guidance")
    beta: float = Field(1.0, ge=0, le=1, description="β, weight of the fine match within one guidance frame (≤ 1, so "
                                                     "that reaching the next frame never lowers the potential)")
    goal_weight: float = Field(0.0, ge=0, description="κ: at the last guidance frame Φ gains α·κ·φ_g, the match to "
                                                     "that frame floored at δ_c instead of δ_f, which leads through "
                                                     "the last centimetres (0: the paper's two terms only)")
    payment: Literal["potential", "level"] = Field("potential", description="how progress is paid: γΦ(s′) − Φ(s) "
                                                       "(potential) or (1 − γ)Φ(s′) (level); docs/rewards.md")
    gamma: float = Field(0.99, gt=0, le=1, description="γ of the payment; the learner's discount")

    @model_validator(mode="after")
    def level_needs_discount(self) -> DEGParams:
        if self.payment == "level" and self.gamma >= 1:
            raise ValueError("deg payment 'level' pays (1 − gamma)·Φ: it needs gamma < 1 (or payment 'potential')")
        return self


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

    @model_validator(mode="after")
    def success_dominates(self) -> DEGSourceParams:
        """The dense return is at most α(1 + β + κ) (docs/rewards.md): below θ, succeeding beats hovering."""
        most = self.alpha * (1 + self.beta + self.goal_weight)
        if self.theta and self.theta <= most:
            raise ValueError(f"deg theta {self.theta} must exceed alpha·(1 + beta + goal_weight) = {most}, the most "
                             "dense return an episode can collect, so that success dominates")
        return self


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
