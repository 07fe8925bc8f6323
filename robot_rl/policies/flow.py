"""Flow-matching chunk policy — the actor POCO uses (linear path, constant-velocity target, Euler sampling).

  path      x_τ = (1 − τ) x_0 + τ A,      x_0 ~ N(0, I),  τ ~ U[0, 1],  A the normalised chunk (flattened H·D)
  loss      ℓ_θ(A|s) = mean over chunk elements of (v_θ(s, x_τ, τ) − (A − x_0))²
  sampling  x_{k+1} = x_k + Δτ · v_θ(s, x_k, τ_k),  τ_k = k/K,  K = spec.flow_steps;  output clipped to [-1, 1]
"""
from __future__ import annotations

import torch
from torch import nn

from robot_rl.policies.activations import Mish
from robot_rl.policies.base import ChunkPolicy, PolicySpec
from robot_rl.policies.encoders import ObservationEncoder, sinusoidal_embedding
from robot_rl.policies.noise import Noise, as_noise
from robot_rl.policies.normalizer import Normalizer

TIME_EMBED_DIM = 32
TIME_SCALE = 1000.0  # τ ∈ [0, 1] is embedded as 1000·τ, the range the sinusoidal frequencies are made for


class FlowMatchingPolicy(ChunkPolicy):
    def __init__(self, spec: PolicySpec, normalizer: Normalizer | None = None):
        super().__init__()
        if spec.type != "flow":
            raise ValueError(f"FlowMatchingPolicy needs spec.type 'flow', got {spec.type!r}")
        self.spec = spec
        self.normalizer = normalizer if normalizer is not None else Normalizer(spec.action_dim, spec.state_dim)
        self.encoder = ObservationEncoder(spec)
        self.chunk_dim = spec.horizon * spec.action_dim
        layers: list[nn.Module] = []
        width = self.encoder.out_dim + self.chunk_dim + TIME_EMBED_DIM
        for _ in range(spec.depth):
            layers += [nn.Linear(width, spec.hidden_dim), Mish()]
            width = spec.hidden_dim
        self.velocity_net = nn.Sequential(*layers, nn.Linear(width, self.chunk_dim))

    def encode(self, obs: dict, augment: bool = False, noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        return self.encoder(self.normalizer.normalize_state(obs["state"]), obs.get("images"), augment, noise)

    def velocity(self, cond: torch.Tensor, x_tau: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """v_θ(s, x_τ, τ): cond (B, F), x_τ (B, H·D), τ (B,) → (B, H·D)."""
        return self.velocity_net(torch.cat([cond, x_tau, sinusoidal_embedding(TIME_SCALE * tau, TIME_EMBED_DIM)], -1))

    def loss(self, obs: dict, actions_normalized: torch.Tensor, cond: torch.Tensor | None = None,
             noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        noise = as_noise(noise)
        cond = self.encode(obs, augment=self.training, noise=noise) if cond is None else cond
        A = actions_normalized.flatten(1)
        x_0 = noise.randn(*A.shape, device=A.device)
        tau = noise.rand(A.shape[0], device=A.device)
        x_tau = (1 - tau[:, None]) * x_0 + tau[:, None] * A
        return (self.velocity(cond, x_tau, tau) - (A - x_0)).pow(2).mean(-1)

    @torch.no_grad()
    def sample_normalized(self, obs: dict, n: int = 1, noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        return self.rsample_normalized(obs, n, noise)

    def rsample_normalized(self, obs: dict, n: int = 1, noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        """Like sample_normalized, but differentiable through the Euler chain (for actor-gradient baselines)."""
        cond = self.encode(obs).repeat_interleave(n, dim=0)  # encode once → (B·n, F); a state's candidates adjacent
        x = as_noise(noise).randn(cond.shape[0], self.chunk_dim, device=cond.device)  # x_0
        dt = 1.0 / self.spec.flow_steps
        for k in range(self.spec.flow_steps):
            tau = torch.full((cond.shape[0],), k * dt, device=cond.device)
            x = x + dt * self.velocity(cond, x, tau)
        return x.clamp(-1.0, 1.0).view(-1, n, self.spec.horizon, self.spec.action_dim)
