"""An exploring off-policy actor-critic in the style of DrQ-v2 (Yarats et al. 2021, `facebookresearch/drqv2`), the
learner DEG was published with, on state vectors (no image augmentation: the observations here are low-dimensional).

  acting    a = clip(μ_θ(s) + ε, −1, 1),  ε ~ N(0, σ_t²),  σ_t linear from σ_0 to σ_end over `std_steps` env steps;
            uniform random actions for the first `seed_steps`
  critic    y = Σ_{i<n} γ^i r_{t+i} + γ^n·(1 − terminal)·min_j Q̄_j(s_{t+n}, clip(μ_θ(s_{t+n}) + clip(ε, ±c)))
            L_Q = Σ_j (Q_j(s_t, a_t) − y)²   (n-step returns, twin critics, target noise clipped at c)
  actor     L_π = −min_j Q_j(s, clip(μ_θ(s) + clip(ε, ±c)))   (the DDPG actor gradient through the critic)
  Polyak    Q̄ ← (1 − τ) Q̄ + τ Q, every update; one update every `update_every` env steps
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn


class DrQConfig(BaseModel):
    """DrQ-v2's defaults where they carry over (n-step 3, σ 1.0 → 0.1, clip 0.3, τ 0.01, batch 256)."""

    model_config = ConfigDict(extra="forbid")
    hidden: int = Field(256, ge=8)
    lr: float = Field(3e-4, gt=0, description="DrQ-v2: 1e-4 with 1M+ steps; higher for the short budgets here")
    batch_size: int = Field(256, ge=1)
    n_step: int = Field(3, ge=1)
    gamma: float = Field(0.99, gt=0, le=1)
    tau: float = Field(0.01, gt=0, le=1)
    std_start: float = Field(1.0, gt=0)
    std_end: float = Field(0.1, gt=0)
    std_steps: int = Field(10_000, ge=1, description="env steps over which σ decays linearly")
    std_clip: float = Field(0.3, gt=0)
    seed_steps: int = Field(1000, ge=0, description="uniform random actions before the actor acts")
    update_every: int = Field(2, ge=1)
    buffer_size: int = Field(200_000, ge=1)


def mlp(inp: int, out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.LayerNorm(hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, out))


class NStepReplay:
    """Transitions stored as n-step tuples (s_t, a_t, R_t, γ^k·(1 − terminal), s_{t+k}), k = min(n, steps left);
    an episode cut by the time limit bootstraps from its last state, one that ended in a terminal state does not."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: DrQConfig):
        self.cfg, size = cfg, cfg.buffer_size
        self.obs = np.zeros((size, obs_dim), np.float32)
        self.next_obs = np.zeros((size, obs_dim), np.float32)
        self.actions = np.zeros((size, action_dim), np.float32)
        self.returns = np.zeros(size, np.float32)
        self.discounts = np.zeros(size, np.float32)
        self.size = self.cursor = 0

    def add_episode(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminal: bool) -> None:
        """obs (T + 1, d), actions (T, a), rewards (T,)."""
        T, n, gamma = len(actions), self.cfg.n_step, self.cfg.gamma
        if len(obs) != T + 1 or len(rewards) != T:
            raise ValueError(f"an episode needs T + 1 observations and T rewards, got {len(obs)}, {len(actions)}, "
                             f"{len(rewards)}")
        for t in range(T):
            k = min(n, T - t)
            i = self.cursor
            self.obs[i], self.actions[i], self.next_obs[i] = obs[t], actions[t], obs[t + k]
            self.returns[i] = sum(gamma**j * rewards[t + j] for j in range(k))
            self.discounts[i] = gamma**k * (0.0 if terminal and t + k == T else 1.0)
            self.cursor = (i + 1) % len(self.obs)
            self.size = min(self.size + 1, len(self.obs))

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(self.size, size=self.cfg.batch_size)
        return tuple(torch.as_tensor(x[idx]) for x in (self.obs, self.actions, self.returns, self.discounts,
                                                        self.next_obs))


class DrQv2Agent:
    def __init__(self, obs_dim: int, action_dim: int, cfg: DrQConfig, seed: int = 0):
        torch.manual_seed(seed)
        self.cfg, self.action_dim = cfg, action_dim
        self.actor = mlp(obs_dim, action_dim, cfg.hidden)
        self.critics = nn.ModuleList([mlp(obs_dim + action_dim, 1, cfg.hidden) for _ in range(2)])
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr)
        self.rng = np.random.default_rng(seed)
        self.replay = NStepReplay(obs_dim, action_dim, cfg)

    def std(self, env_step: int) -> float:
        """σ_t of the exploration schedule."""
        mix = min(env_step / self.cfg.std_steps, 1.0)
        return (1 - mix) * self.cfg.std_start + mix * self.cfg.std_end

    @torch.no_grad()
    def act(self, obs: np.ndarray, env_step: int, std: float | None = None) -> np.ndarray:
        """An action in [−1, 1]^a: uniform during the seed steps, else μ(s) + N(0, σ²) with σ = `std` or σ_t."""
        if std is None and env_step < self.cfg.seed_steps:
            return self.rng.uniform(-1, 1, self.action_dim).astype(np.float32)
        mu = torch.tanh(self.actor(torch.as_tensor(obs, dtype=torch.float32)[None]))[0].numpy()
        sigma = self.std(env_step) if std is None else std
        return np.clip(mu + sigma * self.rng.standard_normal(self.action_dim), -1, 1).astype(np.float32)

    def _policy(self, obs: torch.Tensor, sigma: float) -> torch.Tensor:
        mu = torch.tanh(self.actor(obs))
        return (mu + (sigma * torch.randn_like(mu)).clamp(-self.cfg.std_clip, self.cfg.std_clip)).clamp(-1, 1)

    def _q(self, critics: nn.ModuleList, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], -1)
        return torch.stack([c(x).squeeze(-1) for c in critics])  # (2, B)

    def update(self, env_step: int) -> dict[str, float]:
        obs, action, ret, discount, next_obs = self.replay.sample(self.rng)
        sigma = self.std(env_step)
        with torch.no_grad():
            y = ret + discount * self._q(self.critics_target, next_obs, self._policy(next_obs, sigma)).min(0).values
        q = self._q(self.critics, obs, action)
        critic_loss = F.mse_loss(q, y.expand_as(q), reduction="none").sum(0).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        self.critics.requires_grad_(False)
        actor_loss = -self._q(self.critics, obs, self._policy(obs, sigma)).min(0).values.mean()
        self.critics.requires_grad_(True)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for p, p_targ in zip(self.critics.parameters(), self.critics_target.parameters()):
                p_targ.lerp_(p, self.cfg.tau)
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(), "q_mean": q.mean().item()}
