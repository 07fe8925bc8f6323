"""An exploring off-policy actor-critic for learning from scratch: soft actor-critic (Haarnoja et al. 2018) with
DrQ-v2's n-step returns and twin critics, on state vectors scaled by the statistics of the first (random) steps.

  acting    a = tanh(u), u ~ N(μ_θ(s̃), σ_θ(s̃)²);  uniform random actions for the first `seed_steps`
  scaling   s̃ = (s − mean) / std, both taken from the replay buffer when learning starts, then fixed
  critic    y = Σ_{i<n} γ^i r_{t+i} + γ^n·(1 − terminal)·(min_j Q̄_j(s_{t+n}, a′) − α·log π(a′|s_{t+n})),  a′ ~ π
            L_Q = Σ_j (Q_j(s_t, a_t) − y)²
  actor     L_π = α·log π(a|s) − min_j Q_j(s, a),  a ~ π  (reparameterised)
  entropy   L_α = −log α·(log π(a|s) + H̄),  H̄ = −dim(a)  (α adapts so that the policy keeps entropy H̄)
  Polyak    Q̄ ← (1 − τ) Q̄ + τ Q, every update; one update every `update_every` env steps

Why not a fixed noise schedule (DrQ-v2): with a reward that is flat in the action, as a potential difference is once
the critic has learned the potential, a deterministic actor drifts to saturated actions (tanh passes no gradient
back) and parks the arm at a workspace limit; the entropy term keeps the actions off saturation and keeps exploring
where the value is flat (docs/rewards.md). Scaling matters because the robot state spans centimetres in metres.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

LOG_STD_RANGE = (-5.0, 2.0)


class SACConfig(BaseModel):
    """SAC's defaults (lr 3e-4, batch 256, α₀ 0.1, H̄ = −dim(a)) with DrQ-v2's n-step 3 and τ 0.01."""

    model_config = ConfigDict(extra="forbid")
    hidden: int = Field(256, ge=8)
    lr: float = Field(3e-4, gt=0)
    batch_size: int = Field(256, ge=1)
    n_step: int = Field(3, ge=1)
    gamma: float = Field(0.99, gt=0, le=1)
    tau: float = Field(0.01, gt=0, le=1)
    init_alpha: float = Field(0.1, gt=0, description="α₀, the entropy temperature at the start")
    target_entropy: float | None = Field(None, description="H̄; None = −dim(a)")
    seed_steps: int = Field(1000, ge=0, description="uniform random actions before the actor acts")
    update_every: int = Field(2, ge=1)
    buffer_size: int = Field(200_000, ge=1)


def mlp(inp: int, out: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.LayerNorm(hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, out))


class NStepReplay:
    """Transitions stored as n-step tuples (s_t, a_t, R_t, γ^k·(1 − terminal), s_{t+k}), k = min(n, steps left);
    an episode cut by the time limit bootstraps from its last state, one that ended in a terminal state does not."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: SACConfig):
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


class SACAgent:
    def __init__(self, obs_dim: int, action_dim: int, cfg: SACConfig, seed: int = 0):
        torch.manual_seed(seed)
        self.cfg, self.action_dim = cfg, action_dim
        self.actor = mlp(obs_dim, 2 * action_dim, cfg.hidden)   # μ and log σ
        self.critics = nn.ModuleList([mlp(obs_dim + action_dim, 1, cfg.hidden) for _ in range(2)])
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), requires_grad=True)
        self.target_entropy = -action_dim if cfg.target_entropy is None else cfg.target_entropy
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr)
        self.rng = np.random.default_rng(seed)
        self.replay = NStepReplay(obs_dim, action_dim, cfg)
        self.obs_mean = torch.zeros(obs_dim)
        self.obs_std = torch.ones(obs_dim)
        self.scaled = False

    def scale(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def fix_scaling(self) -> None:
        """mean and std of the states in the buffer (the random seed steps), fixed from here on."""
        states = torch.as_tensor(self.replay.obs[:self.replay.size])
        self.obs_mean, self.obs_std = states.mean(0), states.std(0).clamp_min(1e-3)
        self.scaled = True

    def _gaussian(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.actor(self.scale(obs)).chunk(2, -1)
        return mu, log_std.clamp(*LOG_STD_RANGE)

    def _sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """a ~ π(·|s) and log π(a|s), with the tanh change of variables."""
        mu, log_std = self._gaussian(obs)
        u = mu + log_std.exp() * torch.randn_like(mu)
        a = torch.tanh(u)
        log_prob = (-0.5 * ((u - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return a, log_prob - torch.log(1 - a**2 + 1e-6).sum(-1)

    @torch.no_grad()
    def act(self, obs: np.ndarray, env_step: int, std: float | None = None) -> np.ndarray:
        """An action in [−1, 1]^a: uniform during the seed steps, else a sample of π; with `std`, the mean action
        tanh(μ) plus N(0, std²) instead (an evaluation with a fixed, seeded amount of noise)."""
        if std is None and env_step < self.cfg.seed_steps:
            return self.rng.uniform(-1, 1, self.action_dim).astype(np.float32)
        s = torch.as_tensor(obs, dtype=torch.float32)[None]
        if std is None:
            return self._sample(s)[0][0].numpy()
        mu = torch.tanh(self._gaussian(s)[0])[0].numpy()
        return np.clip(mu + std * self.rng.standard_normal(self.action_dim), -1, 1).astype(np.float32)

    def _q(self, critics: nn.ModuleList, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.scale(obs), action], -1)
        return torch.stack([c(x).squeeze(-1) for c in critics])  # (2, B)

    def update(self) -> dict[str, float]:
        if not self.scaled:
            self.fix_scaling()
        obs, action, ret, discount, next_obs = self.replay.sample(self.rng)
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_action, next_log_prob = self._sample(next_obs)
            soft_value = self._q(self.critics_target, next_obs, next_action).min(0).values - alpha * next_log_prob
            y = ret + discount * soft_value
        q = self._q(self.critics, obs, action)
        critic_loss = F.mse_loss(q, y.expand_as(q), reduction="none").sum(0).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        self.critics.requires_grad_(False)
        new_action, log_prob = self._sample(obs)
        actor_loss = (alpha * log_prob - self._q(self.critics, obs, new_action).min(0).values).mean()
        self.critics.requires_grad_(True)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for p, p_targ in zip(self.critics.parameters(), self.critics_target.parameters()):
                p_targ.lerp_(p, self.cfg.tau)
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item(), "q_mean": q.mean().item(),
                "alpha": alpha.item(), "entropy": -log_prob.mean().item()}
