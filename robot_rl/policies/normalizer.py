"""Action and state normalisation, stored as buffers so it travels inside the policy's state dict and checkpoint.

Actions: per-dimension min/max → [-1, 1] (POCO's clip ζ and the diffusion sampler's clip both assume this range).
States: per-dimension mean/std → zero mean, unit variance.
"""
from __future__ import annotations

import torch
from numpy.typing import ArrayLike
from torch import nn

# Below these, a dimension is treated as constant: it normalises to 0 instead of dividing by ~0.
MIN_ACTION_RANGE = 1e-6
MIN_STATE_STD = 1e-6


class Normalizer(nn.Module):
    action_min: torch.Tensor
    action_max: torch.Tensor
    state_mean: torch.Tensor
    state_std: torch.Tensor

    def __init__(self, action_dim: int, state_dim: int):
        """Identity normaliser (actions already in [-1, 1], states already standardised); set stats with `from_stats`
        or by loading a state dict."""
        super().__init__()
        self.register_buffer("action_min", -torch.ones(action_dim))
        self.register_buffer("action_max", torch.ones(action_dim))
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))

    @classmethod
    def from_stats(cls, action_min: ArrayLike, action_max: ArrayLike, state_mean: ArrayLike,
                   state_std: ArrayLike) -> Normalizer:
        stats = [torch.as_tensor(x, dtype=torch.float32).flatten()
                 for x in (action_min, action_max, state_mean, state_std)]
        if stats[0].shape != stats[1].shape or stats[2].shape != stats[3].shape:
            raise ValueError("action_min/action_max and state_mean/state_std must have matching shapes")
        if (stats[1] < stats[0]).any():
            raise ValueError("action_max < action_min in some dimension")
        normalizer = cls(len(stats[0]), len(stats[2]))
        for buffer, value in zip((normalizer.action_min, normalizer.action_max, normalizer.state_mean,
                                  normalizer.state_std), stats):
            buffer.copy_(value)
        return normalizer

    def normalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Raw (..., D) → [-1, 1]; values outside the recorded range are clipped (the policies can't produce them).
        A constant dimension (zero range) maps to 0."""
        half_range = (self.action_max - self.action_min) / 2
        scale = torch.where(half_range < MIN_ACTION_RANGE / 2, torch.ones_like(half_range), half_range)
        return ((actions - (self.action_max + self.action_min) / 2) / scale).clamp(-1.0, 1.0)

    def unnormalize_actions(self, actions_normalized: torch.Tensor) -> torch.Tensor:
        """[-1, 1] (..., D) → raw units; the input is clipped to [-1, 1] first, so outputs stay inside the data range
        (a constant dimension always gets its constant)."""
        half_range = (self.action_max - self.action_min) / 2
        return (self.action_max + self.action_min) / 2 + actions_normalized.clamp(-1.0, 1.0) * half_range

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        std = torch.where(self.state_std < MIN_STATE_STD, torch.ones_like(self.state_std), self.state_std)
        return (state - self.state_mean) / std
