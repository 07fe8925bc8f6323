"""POCO — Posterior Optimization with Clipped Objective (Chen et al., arXiv 2604.01860), offline-to-online.

One update (UTD 1, one Adam step over actor + critic), for a batch (s, A^D, R_h, s', m) from the replay store:

  critic    y = R_h + γ^h · m · mean_i Q̄_i(s', A'),  A' ~ π_θ(·|s')                 (target critic Q̄, h-step TD)
            L_Q = Σ_i (Q_i(s, A^D) − y)²
  E-step    A^1..A^N ~ π_θ(·|s),  w_j = softmax_j((Q̄(s, A^j) − max_k Q̄(s, A^k)) / η)     (no gradient)
  M-step    L_π = c_bc · ℓ_θ(A^D|s) + β · Σ_j w_j · min(ℓ_θ(A^j|s), ζ)
            A^D is a buffer chunk, or with bc_anchor "expert" a demonstration / intervention / successful one;
            ℓ_θ is the policy's own training loss (flow matching / denoising MSE) standing in for −log π_θ;
            min(·, ζ) gives zero gradient to candidates the policy already finds unlikely (the clip).
  warm-up   for the first `warmup_updates` updates the actor gets the BC term only (critic warm-up).
  Polyak    Q̄ ← (1 − τ) Q̄ + τ Q;  after an actor update also π̄ ← (1 − τ_π) π̄ + τ_π π_θ, the policy that acts
            and is published (not in the paper: an EMA of the weights, as diffusion_policy evaluates with)

Modes sharing this code (baselines): "poco"; "bc" (actor BC only, critic still trained for logging);
"best_of_n" (actor BC only; acting picks argmax_j Q(s, A^j) over N candidates, Q-chunking style);
"actor_gradient" (off-policy actor gradient through the flow's Euler chain, TD3+BC-style:
  L_π = c_bc · ℓ_θ(A^D|s) − α / mean|Q| · Q(s, A_θ(s, x_0)), the kind of update POCO's paper reports collapsing).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from robot_rl.policies.base import ChunkPolicy
from robot_rl.policies.critic import BestOfN, ChunkCritic
from robot_rl.policies.noise import Noise
from robot_rl.rl.config import POCOConfig
from robot_rl.rl.replay import ChunkBatch


def posterior_weights(q: torch.Tensor, temperature: float) -> torch.Tensor:
    """E-step particle weights w_j = softmax_j((Q(s, A^j) − max_k Q(s, A^k)) / η) over candidates, q is (B, N)."""
    return torch.softmax((q - q.max(1, keepdim=True).values) / temperature, dim=1)


def clipped_posterior_loss(weights: torch.Tensor, losses: torch.Tensor, clip: float,
                           batch_mean=torch.mean) -> torch.Tensor:
    """M-step term Σ_j w_j · min(ℓ_θ(A^j|s), ζ), averaged over the batch; clipped candidates get no gradient."""
    return batch_mean((weights * losses.clamp(max=clip)).sum(1))


def observation_batch(states, images: dict | None = None, device: torch.device | str = "cpu") -> dict:
    """A policy observation from replay arrays: state (B, S) and images {camera: (B, H, W, 3) uint8} → (B, 3, H, W)."""
    obs = {"state": torch.as_tensor(states, device=device)}
    if images:
        obs["images"] = {cam: torch.as_tensor(frames, device=device).permute(0, 3, 1, 2)
                         for cam, frames in images.items()}
    return obs


@dataclass
class UpdateMetrics:
    critic_loss: float
    actor_loss: float
    bc_loss: float
    q_mean: float
    q_std: float
    target_mean: float
    posterior_loss: float = float("nan")
    q_clip_ratio: float = float("nan")
    weight_ess: float = float("nan")
    weight_max: float = float("nan")


class POCOLearner:
    def __init__(self, policy: ChunkPolicy, cfg: POCOConfig, seed: int = 0):
        if policy.spec.type not in ("flow", "diffusion"):
            raise ValueError(f"POCO fine-tunes flow or diffusion chunk policies, not {policy.spec.type!r} ones "
                             "(tokenized policies: robot-rl rft)")
        self.policy = policy
        self.cfg = cfg
        self.device = next(policy.parameters()).device   # the learner computes where the policy lives
        spec = policy.spec
        self.critic = ChunkCritic(policy.encoder.out_dim, spec.horizon * spec.action_dim, cfg.critic_hidden,
                                  cfg.critic_depth, cfg.critic_ensemble).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.acting_policy = policy if cfg.acting_polyak == 1 else copy.deepcopy(policy).requires_grad_(False)
        self.optimizer = torch.optim.Adam(list(policy.parameters()) + list(self.critic.parameters()), lr=cfg.lr)
        self.updates = 0
        # acting and updating draw from generators of their own: what the learner does does not depend on how much
        # noise its updates drew, and the ranks of a distributed learner keep their update noise in step
        self.generator = torch.Generator().manual_seed(seed)
        update_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
        self.noise_generator = torch.Generator().manual_seed(update_seed)

    # ---- persistence (critic, target critic, update count, and the trained actor when it differs from the acting
    # one; the acting policy is what is saved as the policy checkpoint) ----------------------------------------------
    def critic_tensors(self) -> dict[str, torch.Tensor]:
        trained = {} if self.acting_policy is self.policy else {
            f"trained_actor.{k}": v for k, v in self.policy.state_dict().items()}
        return {**{f"critic.{k}": v for k, v in self.critic.state_dict().items()},
                **{f"critic_target.{k}": v for k, v in self.critic_target.state_dict().items()},
                **trained, "updates": torch.tensor(self.updates)}

    def load_critic_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of critic_tensors for a learner built on the saved (acting) policy; raises ValueError naming the
        mismatch (e.g. another critic size). Without a trained actor in the state, or with τ_π 1 (no average kept),
        training goes on from the acting weights."""
        for prefix, module in (("critic.", self.critic), ("critic_target.", self.critic_target)):
            own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(own)
            except RuntimeError as err:
                raise ValueError(f"critic state does not fit this learner's critic: {err}") from None
        trained = {k[len("trained_actor."):]: v for k, v in tensors.items() if k.startswith("trained_actor.")}
        if trained and self.acting_policy is not self.policy:
            self.policy.load_state_dict(trained)
        self.updates = int(tensors["updates"])

    # ---- acting ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: dict) -> torch.Tensor:
        """Normalised chunks (B, H, D) to execute: a policy sample, or the best of N under Q in best_of_n mode."""
        self.acting_policy.eval()
        selector = self.selector()
        if selector is None:
            return self.acting_policy.sample_normalized(obs, 1, self.generator)[:, 0]
        return selector.choose(self.acting_policy, obs, self.generator)

    def selector(self) -> BestOfN | None:
        """How chunks are chosen when acting, wherever the policy runs: best of N under the target critic in
        best_of_n mode (published with the weights), else one sample."""
        return BestOfN(self.critic_target, self.cfg.num_candidates) if self.cfg.mode == "best_of_n" else None

    # ---- learning -------------------------------------------------------------------------------------------------
    def update(self, batch: ChunkBatch, train_actor: bool = True) -> UpdateMetrics:
        """One joint Adam step on critic + actor; `train_actor=False` steps the critic only (offline warm-up)."""
        cfg, h = self.cfg, self.policy.spec.horizon
        obs = observation_batch(batch.states, batch.images, self.device)
        next_obs = observation_batch(batch.next_states, batch.next_images, self.device)
        actions, returns, bootstrap, expert = (torch.as_tensor(x, device=self.device) for x in (
            batch.actions, batch.returns, batch.bootstrap, batch.expert))
        noise = self._noise()
        self.policy.train()

        # critic: h-step TD target from the target critic at A' ~ π_θ(·|s')
        with torch.no_grad():
            next_chunk = self.policy.sample_normalized(next_obs, 1, noise)[:, 0]
            y = returns + cfg.gamma**h * bootstrap * self._target_q(self._features(next_obs), next_chunk)
            features = self._features(obs)
        q = self.critic(features, actions)
        critic_loss = self._batch_mean(((q - y) ** 2).sum(0))

        # actor: BC trust region on buffer (or expert) chunks (+ clipped posterior term after warm-up)
        with torch.set_grad_enabled(train_actor):
            bc_losses = self.policy.loss(obs, actions, noise=noise)
            bc_loss = self._batch_mean(bc_losses, expert if cfg.bc_anchor == "expert" else None)
        if not train_actor:
            return self._step(critic_loss, None, bc_loss, q, y, {})
        actor_loss = cfg.bc_weight * bc_loss
        extra = {}
        if cfg.mode == "poco" and self.updates >= cfg.warmup_updates:
            posterior_loss, extra = self._posterior_loss(obs, features, noise)
            actor_loss = actor_loss + cfg.beta * posterior_loss
        elif cfg.mode == "actor_gradient" and self.updates >= cfg.warmup_updates:
            self.critic.requires_grad_(False)  # −Q trains the actor only (autograd records this at forward time)
            q_pi = self.critic(features, self.policy.rsample_normalized(obs, 1, noise)[:, 0]).mean(0)
            self.critic.requires_grad_(True)
            q_scale = self._batch_statistic(q_pi.abs().detach()).clamp(min=1e-6)
            actor_loss = actor_loss - cfg.actor_q_weight / q_scale * self._batch_mean(q_pi)

        self.updates += 1
        return self._step(critic_loss, actor_loss, bc_loss, q, y, extra)

    def pretrain_critic(self, sample_batch, updates: int) -> list[UpdateMetrics]:
        """Critic-only TD updates before going online, actor frozen (algorithms.md §1g.3): the first E-steps then
        rank candidates with a critic that has seen the demonstrations. `sample_batch()` returns a ChunkBatch."""
        return [self.update(sample_batch(), train_actor=False)
                for _ in tqdm(range(updates), desc="critic warm-up on the offline data", unit="update")]

    def _step(self, critic_loss, actor_loss, bc_loss, q, y, extra: dict) -> UpdateMetrics:
        self.optimizer.zero_grad(set_to_none=True)
        (critic_loss if actor_loss is None else critic_loss + actor_loss).backward()
        self._sync_gradients()
        self.optimizer.step()
        self._polyak(actor_trained=actor_loss is not None)
        return UpdateMetrics(critic_loss=critic_loss.item(),
                             actor_loss=float("nan") if actor_loss is None else actor_loss.item(),
                             bc_loss=bc_loss.item(), q_mean=q.mean().item(), q_std=q.std().item(),
                             target_mean=y.mean().item(), **extra)

    def _posterior_loss(self, obs: dict, features: torch.Tensor, noise: Noise) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        B, N = obs["state"].shape[0], cfg.num_candidates
        with torch.no_grad():  # E-step: candidates from the current policy, weights from the target critic
            candidates = self.policy.sample_normalized(obs, N, noise).flatten(0, 1)  # (B·N, H, D)
            w = posterior_weights(self._target_q(features.repeat_interleave(N, 0), candidates).view(B, N),
                                  cfg.temperature)
        cond = self.policy.encode(obs, self.policy.training, noise).repeat_interleave(N, 0)  # each state encoded once
        losses = self.policy.loss(None, candidates, cond=cond, noise=noise).view(B, N)  # ℓ_θ(A^j|s)
        posterior = clipped_posterior_loss(w, losses, cfg.clip, self._batch_mean)
        metrics = {
            "posterior_loss": posterior.item(),
            "q_clip_ratio": (losses > cfg.clip).float().mean().item(),
            "weight_ess": (1.0 / (w**2).sum(1)).mean().item(),
            "weight_max": w.max(1).values.mean().item(),
        }
        return posterior, metrics

    # ---- the batch: every loss averages over it here, so that robot_rl.rl.distributed can split it across processes
    def _noise(self) -> Noise:
        """Where one update draws its noise (TD-target, E-step and actor-gradient samples, the policy's losses and
        augmentation): the update generator, every draw for the whole batch."""
        return Noise(self.noise_generator)

    def _batch_mean(self, values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Σ_b w_b·x_b / max(Σ_b w_b, 1) over the batch, the plain mean without weights: a loss term."""
        if weights is None:
            return values.mean()
        return (values * weights).sum() / weights.sum().clamp(min=1.0)

    def _batch_statistic(self, values: torch.Tensor) -> torch.Tensor:
        """The batch mean of values without gradient that scale a loss (a normaliser)."""
        return values.mean()

    def _sync_gradients(self) -> None:
        """Between backward and the Adam step: nothing to exchange when one process sees the whole batch."""

    @torch.no_grad()
    def _features(self, obs: dict) -> torch.Tensor:
        """The critic's input: the policy's encoding of the observations, without gradient and without augmentation."""
        return self.policy.encode(obs)

    def _target_q(self, features: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        return self.critic_target(features, chunk).mean(0)

    @torch.no_grad()
    def _polyak(self, actor_trained: bool) -> None:
        for p, p_targ in zip(self.critic.parameters(), self.critic_target.parameters()):
            p_targ.lerp_(p, self.cfg.polyak)
        if actor_trained and self.acting_policy is not self.policy:
            for p, p_act in zip(self.policy.parameters(), self.acting_policy.parameters()):
                p_act.lerp_(p, self.cfg.acting_polyak)
