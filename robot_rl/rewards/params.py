"""DEG reward parameters (pydantic only, so the reward node's configuration loads without torch)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DEGParams(BaseModel):
    """Reward parameters with the spec's defaults (../shared/research/algorithms.md §2b/2c)."""

    model_config = ConfigDict(extra="forbid")
    coarse_threshold: float = Field(0.80, ge=-1, le=1, description="δ_c, loose cosine threshold of the pointer")
    fine_threshold: float = Field(0.92, ge=-1, le=1, description="δ_f, tight cosine threshold of the matching term")
    window: int = Field(8, ge=1, description="W, look-ahead of the pointer in guidance frames")
    alpha: float = Field(20.0, ge=0, description="α, scale of the dense reward")
    beta: float = Field(1.0, ge=0, description="β, weight of fine matching relative to coarse progress")
    fine_steps: float = Field(0.0, ge=0, description="r_f divisor (expected matched steps); 0 = mean expert "
                                                     "episode length stored with the model")
