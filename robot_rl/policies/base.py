"""One interface for every generative chunk policy.

Observations are dicts of batched tensors: `"state"` (B, state_dim) float32 in raw units and, for image policies,
`"images"` {camera: (B, 3, H, W) uint8}. Actions are chunks (B, H, D). Inside, every policy works on normalised
actions in [-1, 1] (the normaliser is part of the policy and of its checkpoint), because POCO's clip ζ acts on the
training loss, whose scale depends on that normalisation.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from robot_rl.policies.noise import Noise


class PolicySpec(BaseModel):
    """Everything needed to rebuild a policy before its weights are loaded (stored in every checkpoint)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["flow", "diffusion", "tokenized"]
    action_names: list[str]
    state_dim: int = Field(ge=1)
    horizon: int = Field(5, ge=1, description="predicted chunk length H")
    execute_steps: int = Field(5, ge=1, description="points of each chunk that are executed")
    environment_state: bool = Field(False, description="state ends with the sim object/goal state "
                                                        "(data.features.ENVIRONMENT_STATE_NAMES)")
    cameras: list[str] = Field(default_factory=list, description="empty = state-only policy")
    image_size: int = Field(96, ge=16)
    hidden_dim: int = Field(256, ge=8)
    depth: int = Field(3, ge=1)
    flow_steps: int = Field(10, ge=1, description="flow: Euler integration steps")
    diffusion_train_steps: int = Field(100, ge=2, description="diffusion: DDPM training timesteps")
    diffusion_infer_steps: int = Field(10, ge=1, description="diffusion: DDIM inference steps")
    tokenized: dict = Field(default_factory=dict, description="tokenized: TokenizedOptions (policies/tokenized.py)")

    @property
    def action_dim(self) -> int:
        return len(self.action_names)


class ChunkPolicy(nn.Module, ABC):
    spec: PolicySpec

    @abstractmethod
    def sample_normalized(self, obs: dict, n: int = 1, noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        """n chunks per observation, (B, n, H, D), normalised to [-1, 1]. No gradient. `noise` (policies/noise.py)
        or a generator for it; the global RNG if None."""

    def rsample_normalized(self, obs: dict, n: int = 1, noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        """Differentiable samples, for actor-gradient learners; only policies with a reparameterised sampler."""
        raise NotImplementedError(f"{self.spec.type} policies have no differentiable sampler")

    @abstractmethod
    def loss(self, obs: dict, actions_normalized: torch.Tensor, cond: torch.Tensor | None = None,
             noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        """Per-sample training loss ℓ_θ(A|s), shape (B,) — the flow-matching / denoising MSE averaged over the
        chunk. `actions_normalized` is (B, H, D); `cond`, if given, is `encode(obs)` computed by the caller (POCO
        encodes each state once for its N candidates); `noise` draws the loss's noise (and the augmentation)."""

    def encode(self, obs: dict, augment: bool = False, noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        """The conditioning features of the observations, (B, F): normalised state ⊕ image features (randomly
        shifted with `augment`, the shifts drawn from `noise`)."""
        raise NotImplementedError(f"{self.spec.type} policies have no observation encoder")

    def sample(self, obs: dict, n: int = 1, noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        """n chunks per observation in raw action units, (B, n, H, D)."""
        return self.normalizer.unnormalize_actions(self.sample_normalized(obs, n, noise))
