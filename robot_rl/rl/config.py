"""POCO's settings: one typed model and one set of defaults, read by the learner node, `robot-rl finetune-gym`, the demo
and the benches. Free of torch so that a graph's parameters validate without loading it."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class POCOConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["poco", "bc", "best_of_n", "actor_gradient"] = "poco"
    num_candidates: int = Field(8, ge=1, description="N (the paper: 32); 8 keeps one update near 60 ms on one CPU core")
    temperature: float = Field(0.01, gt=0, description="η; the released scripts' 1e-3 made the pick_lift weights a "
                                                        "hard argmax on critic noise (ESS 1.1 of 8)")
    beta: float = Field(1.0, ge=0, description="β, weight of the posterior term")
    bc_weight: float = Field(1.0, ge=0, description="c_bc, the BC trust region")
    bc_anchor: Literal["buffer", "expert"] = Field("expert", description="the chunks c_bc·ℓ(A^D) imitates: "
                                                  "demonstrations, human interventions and successful episodes (the "
                                                  "paper's anchor is expert data; pick_lift, 3 seeds: +20 points over "
                                                  "anchoring on every buffer chunk), or every buffer chunk")
    clip: float = Field(0.5, gt=0, description="ζ, clip on the candidate loss; tune by q_clip_ratio (0.3 clipped "
                                                 "55 % of pick_lift candidates; the target is 10-50 %)")
    gamma: float = Field(0.99, gt=0, le=1)
    polyak: float = Field(0.005, gt=0, le=1, description="τ")
    acting_polyak: float = Field(0.005, gt=0, le=1, description="τ_π: the policy that acts (and is published) is a "
                                 "Polyak average of the trained one, π̄ ← (1 − τ_π)π̄ + τ_π·π_θ; 1 acts with π_θ "
                                 "(pick_lift, 3 seeds: no evaluation below the prior, against one 9 points below)")
    lr: float = Field(3e-4, gt=0)
    batch_size: int = Field(128, ge=1)
    warmup_updates: int = Field(300, ge=0, description="updates whose actor loss is BC only")
    critic_pretrain_updates: int = Field(500, ge=0, description="critic-only TD updates on the offline data before "
                                                                  "the first online episode")
    utd_ratio: float = Field(1.0, gt=0, description="learner updates per env step (update-to-data ratio), in the gym "
                                                    "loop and in the learner node alike")
    actor_q_weight: float = Field(2.5, ge=0, description="α of the actor_gradient baseline (TD3+BC's 2.5)")
    critic_hidden: int = Field(256, ge=8)
    critic_depth: int = Field(3, ge=1)
    critic_ensemble: int = Field(2, ge=1)
    step_penalty: float = Field(-0.01, description="added to every reward when episodes enter the store")

    def updates_owed(self, env_steps: int) -> int:
        """Learner updates for an episode of `env_steps` steps (at least one, so every episode is trained on)."""
        return max(1, round(self.utd_ratio * env_steps))
