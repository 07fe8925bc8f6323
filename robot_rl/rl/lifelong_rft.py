"""LifeLong-RFT (Liu et al., RSS 2026): offline GRPO on demonstrations with the Multi-Dimensional Process Reward.

No environment and no learned reward: for each demo sample (observation o, instruction l, reference chunk Ã) the
policy samples G completions a_1..a_G from π_old (constrained decoding at temperature τ, so each one decodes; see
robot_rl/policies/tokenized.py), each scored against the reference:

    QACR = Σ_{ℓ ≤ min(U,V)} 1[e_ℓ = ẽ_ℓ] / max(U, V)      agreement of the decoded elements e (bins or quantised DCT
                                                             coefficients), U, V their counts: BPE ids would shift
    CTAR = (1/H) Σ_t [ β_p exp(−α d_t) + (1 − β_p) 1[sign y_t^grip = sign ỹ_t^grip] ],
           d_t = (1/D_pose) ‖y_t^pose − ỹ_t^pose‖_1                         continuous agreement (normalised)
    FCR  = 1 if the completion decodes to an (H, D) chunk else 0           format
    MDPR = ω·QACR + (1 − ω)·CTAR + λ·FCR,  ω = 0.7, λ = 0.1;  every term is 0 for an invalid completion
    (ỹ = decode(ã), so an exact copy of the reference scores 0.7 + 0.3 + 0.1 = 1.1)

    A_i = (r_i − mean_j r_j) / max(std_j r_j, σ_min)                      group z-score, floored: a group whose
                                                                            rewards barely differ gets small
                                                                            advantages; std = 0 → group dropped
    ρ_{i,t} = π_θ(a_{i,t} | ·) / π_old(a_{i,t} | ·)                        per action token (EOS included), both
                                                                            under the decoding mask at τ
    J(θ) = mean_i mean_t [ min(ρ A_i, clip(ρ, 1 − ε, 1 + ε) A_i) − γ_KL · KL_t ]
    KL_t = π_ref/π_θ − log(π_ref/π_θ) − 1                                 k3 estimator, π_ref = frozen start policy

Each rollout batch is optimised for `epochs` passes in `minibatches` shuffled minibatches (π_old fixed meanwhile), so
from the second update on ρ ≠ 1 and the clip can engage; the clipped-token fraction is logged.

Multi-GPU through `accelerate` (each process samples its own demo batch; DDP averages the gradients); in CI a single
CPU process.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, Field
from tqdm import tqdm

from robot_rl.core.types import GRIPPER
from robot_rl.data.lerobot import DatasetError, LeRobotReader, chunk_dataset
from robot_rl.policies.normalizer import Normalizer
from robot_rl.policies.tokenized import TokenizedPolicy

TERMS = ("qacr", "ctar", "fcr", "mdpr")


# ---- the reward ---------------------------------------------------------------------------------------------------
class MDPRConfig(BaseModel, extra="forbid"):
    omega: float = 0.7    # ω: QACR vs CTAR
    lam: float = 0.1      # λ: FCR bonus
    alpha: float = 5.0    # α: pose sensitivity of CTAR on [-1, 1]-normalised actions
    beta_p: float = 0.7   # β_p: pose vs gripper inside CTAR


class MDPRTerms(NamedTuple):
    qacr: float
    ctar: float
    fcr: float
    mdpr: float


def mdpr(pred_elements: np.ndarray | None, ref_elements: np.ndarray, pred_chunk: np.ndarray | None,
         ref_chunk: np.ndarray, gripper_dim: int | None, cfg: MDPRConfig | None = None) -> MDPRTerms:
    """MDPR of one completion from its decoded elements (tokenizer.elements) and chunk; either None when the
    completion did not decode (→ all terms 0). Chunks are (H, D) normalised; `gripper_dim` None means every dimension
    is pose."""
    cfg = cfg or MDPRConfig()
    if pred_elements is None or pred_chunk is None or pred_chunk.shape != ref_chunk.shape:
        return MDPRTerms(0.0, 0.0, 0.0, 0.0)
    U, V = len(pred_elements), len(ref_elements)
    n = min(U, V)
    qacr = float(np.sum(np.asarray(pred_elements[:n]) == np.asarray(ref_elements[:n]))) / max(U, V, 1)
    pose = [d for d in range(ref_chunk.shape[1]) if d != gripper_dim]
    d_t = np.abs(pred_chunk[:, pose] - ref_chunk[:, pose]).mean(axis=1)
    r_pose = np.exp(-cfg.alpha * d_t)
    if gripper_dim is None:
        ctar = float(r_pose.mean())
    else:
        r_grip = (np.sign(pred_chunk[:, gripper_dim]) == np.sign(ref_chunk[:, gripper_dim])).astype(float)
        ctar = float(np.mean(cfg.beta_p * r_pose + (1 - cfg.beta_p) * r_grip))
    return MDPRTerms(qacr, ctar, 1.0, cfg.omega * qacr + (1 - cfg.omega) * ctar + cfg.lam * 1.0)


def group_advantages(rewards: torch.Tensor, std_floor: float, min_std: float = 1e-8):
    """rewards (B, G) → (A (B, G) z-scored per group with the std floored at `std_floor`, keep (B,) groups with
    non-zero spread). The floor keeps a group whose rewards differ by rounding noise from getting ±1 advantages."""
    mean, std = rewards.mean(dim=1, keepdim=True), rewards.std(dim=1, unbiased=False, keepdim=True)
    return (rewards - mean) / std.clamp_min(std_floor), std[:, 0] > min_std


def k3_kl(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π_θ ‖ π_ref) on samples from π_θ: r − log r − 1, r = π_ref/π_θ (≥ 0, = 0 iff equal)."""
    log_ratio = logp_ref - logp
    return torch.exp(log_ratio) - log_ratio - 1.0


def grpo_loss(logp: torch.Tensor, logp_old: torch.Tensor, logp_ref: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, clip_eps: float, kl_coef: float) -> tuple[torch.Tensor, dict]:
    """−J(θ): token-level clipped surrogate plus γ_KL·k3, averaged over each completion's tokens, then over
    completions. logp* (N, T), advantages (N,), mask (N, T) bool."""
    ratio = torch.exp(logp - logp_old)
    A = advantages[:, None]
    surrogate = torch.minimum(ratio * A, ratio.clamp(1 - clip_eps, 1 + clip_eps) * A)
    kl = k3_kl(logp, logp_ref)
    m = mask.float()
    per_sequence = ((surrogate - kl_coef * kl) * m).sum(1) / m.sum(1)
    with torch.no_grad():
        clipped = ((ratio - 1).abs() > clip_eps).float()
        stats = {"kl": float(((kl * m).sum(1) / m.sum(1)).mean()),
                 "clip_frac": float(((clipped * m).sum() / m.sum())),
                 "ratio_dev": float((((ratio - 1).abs() * m).sum() / m.sum()))}
    return -per_sequence.mean(), stats


# ---- demonstrations ------------------------------------------------------------------------------------------------
@dataclass
class Demos:
    """Chunked demo samples: raw states and action chunks (the policy normalises), one instruction per sample."""

    states: np.ndarray                    # (N, S)
    chunks: np.ndarray                    # (N, H, D) raw units
    instructions: list[str]
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera → (N, 3, h, w) uint8
    episode: np.ndarray | None = None     # (N,) episode id (within its source)

    def __len__(self) -> int:
        return len(self.states)

    def subset(self, idx) -> Demos:
        idx = np.asarray(idx)
        return Demos(self.states[idx], self.chunks[idx], [self.instructions[i] for i in idx],
                     {c: v[idx] for c, v in self.images.items()},
                     None if self.episode is None else self.episode[idx])

    def obs(self, idx, device="cpu") -> dict:
        batch = {"state": torch.as_tensor(self.states[idx], device=device),
                 "instruction": [self.instructions[i] for i in np.asarray(idx)]}
        if self.images:
            batch["images"] = {c: torch.as_tensor(v[idx], device=device) for c, v in self.images.items()}
        return batch

    @staticmethod
    def concat(parts: list[Demos]) -> Demos:
        offsets = np.cumsum([0] + [int(p.episode.max()) + 1 if p.episode is not None and len(p) else 0
                                   for p in parts[:-1]])
        return Demos(np.concatenate([p.states for p in parts]), np.concatenate([p.chunks for p in parts]),
                     [s for p in parts for s in p.instructions],
                     {c: np.concatenate([p.images[c] for p in parts]) for c in parts[0].images},
                     np.concatenate([(p.episode if p.episode is not None else np.zeros(len(p), np.int64)) + o
                                     for p, o in zip(parts, offsets)]))

    def episodes(self, ids) -> Demos:
        """The samples of the given episode ids."""
        return self.subset(np.flatnonzero(np.isin(self.episode, list(ids))))


def load_demos(root: str | Path, horizon: int, images: bool = False, instruction: str | None = None) -> Demos:
    """Every frame of a LeRobot v3 dataset as (state, chunk a_t..a_{t+H−1}); the instruction is the frame's task
    string unless one is given; images (when asked for) from the dataset's videos."""
    reader = LeRobotReader(root)
    data = chunk_dataset(reader, horizon)
    task_index = np.concatenate([reader.episode(i)["task_index"] for i in range(reader.num_episodes)])
    tasks = reader.tasks or [""]
    texts = [instruction if instruction is not None else tasks[int(t)] for t in task_index]
    frames = {}
    if images:
        for camera in reader.cameras:
            frames[camera] = np.concatenate([reader.episode(i, images=True)[f"images.{camera}"]
                                             for i in range(reader.num_episodes)]).transpose(0, 3, 1, 2)
    return Demos(data.states, data.actions, texts, frames, data.episode_index)


STATE_STD_FLOOR = 0.05  # m / rad / quaternion units


def demo_normalizer(demos: Demos) -> Normalizer:
    """Action min/max → [-1, 1] and state mean/std from the demo frames. The std is floored: a dimension the demos
    barely move (the EE orientation under a fixed-orientation expert, std ~1e-4) would otherwise be blown up into an
    episode fingerprint the LM memorises, and into huge out-of-range inputs once a rollout drifts."""
    actions = demos.chunks[:, 0]
    return Normalizer.from_stats(actions.min(0), actions.max(0), demos.states.mean(0),
                                 np.maximum(demos.states.std(0), STATE_STD_FLOOR))


def _check_demos(policy: TokenizedPolicy, demos: Demos) -> None:
    spec = policy.spec
    if demos.states.shape[1] != spec.state_dim or demos.chunks.shape[1:] != (spec.horizon, spec.action_dim):
        raise DatasetError(f"demos have state {demos.states.shape[1]} and chunks {demos.chunks.shape[1:]}, the "
                           f"policy needs state {spec.state_dim} and chunks {(spec.horizon, spec.action_dim)}")
    missing = set(spec.cameras) - set(demos.images)
    if missing:
        raise DatasetError(f"the policy needs cameras {sorted(missing)} that the demos lack")


# ---- supervised fine-tuning ----------------------------------------------------------------------------------------
class SFTConfig(BaseModel, extra="forbid"):
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    schedule: Literal["constant", "cosine"] = "cosine"  # cosine: lr decays to 0 over `steps` (after 5 % warm-up)
    seed: int = 0


def lr_factor(step: int, steps: int, schedule: str) -> float:
    """Multiplier of the base lr at `step`: linear warm-up over the first 5 % of steps, then cosine to 0."""
    if schedule == "constant":
        return 1.0
    warmup = max(1, steps // 20)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def supervised_finetune(policy: TokenizedPolicy, demos: Demos, cfg: SFTConfig, desc: str = "SFT") -> list[float]:
    """Token cross-entropy on the demo chunks (teacher forcing); returns the per-step losses."""
    _check_demos(policy, demos)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = next(policy.parameters()).device
    chunks = policy.normalizer.normalize_actions(torch.as_tensor(demos.chunks))
    tokens = policy.encode_chunks(chunks)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    policy.train()
    losses = []
    for step in (bar := tqdm(range(cfg.steps), desc=desc, unit="step", leave=False)):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg.steps, cfg.schedule)
        idx = rng.integers(0, len(demos), size=min(cfg.batch_size, len(demos)))
        loss = policy.token_nll(demos.obs(idx, device), tokens[idx].to(device), augment=True).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(nll=f"{np.mean(losses[-50:]):.3f}")
    policy.eval()
    return losses


# ---- GRPO with MDPR -------------------------------------------------------------------------------------------------
class RFTConfig(BaseModel, extra="forbid"):
    iterations: int = Field(200, ge=1)
    batch_size: int = Field(16, ge=1)      # demo states per iteration (per process)
    group_size: int = Field(8, ge=2)       # G
    lr: float = Field(1e-5, gt=0)          # the paper: 1e-6 on a 3B VLA; small models need more
    clip_eps: float = Field(0.2, gt=0)     # ε
    kl_coef: float = Field(0.04, ge=0)     # γ_KL
    temperature: float = Field(1.0, gt=0)  # τ of π_old, of the ratio and of the KL
    epochs: int = Field(2, ge=1)           # passes over each rollout batch (π_old fixed meanwhile)
    minibatches: int = Field(2, ge=1)      # optimiser steps per pass: updates per batch = epochs · minibatches
    adv_std_floor: float = Field(0.02, ge=0)  # σ_min of the group z-score (MDPR is on a 0–1.1 scale)
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 0
    mdpr: MDPRConfig = Field(default_factory=MDPRConfig)


class GRPOTrainer:
    """One GRPO-with-MDPR iteration (a rollout batch and its updates) per call of `step`; π_ref is a frozen copy of
    the policy at construction."""

    def __init__(self, policy: TokenizedPolicy, cfg: RFTConfig, accelerator=None):
        from accelerate import Accelerator

        self.cfg = cfg
        self.accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        self.reference = copy.deepcopy(policy).eval().requires_grad_(False).to(self.accelerator.device)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
        self.model, self.optimizer = self.accelerator.prepare(policy, optimizer)
        self.policy: TokenizedPolicy = self.accelerator.unwrap_model(self.model)
        names = list(self.policy.spec.action_names)
        self.gripper_dim = names.index(GRIPPER) if GRIPPER in names else None
        self.generator = torch.Generator().manual_seed(cfg.seed + self.accelerator.process_index)

    def score(self, tokens: torch.Tensor, ref_chunks: torch.Tensor) -> np.ndarray:
        """MDPR terms of completions (B·G, T) against their reference chunks (B, H, D) normalised → (B, G, 4)."""
        G, tokenizer = self.cfg.group_size, self.policy.tokenizer
        out = np.zeros((len(ref_chunks), G, len(TERMS)))
        for b, ref in enumerate(ref_chunks.cpu().numpy()):
            ref_ids = tokenizer.encode(ref)
            ref_elements, ref_cont = tokenizer.elements(ref_ids), tokenizer.decode(ref_ids).actions
            for g in range(G):
                seq = tokens[b * G + g]
                ids, well_formed = self.policy.action_ids(seq)
                elements = tokenizer.elements(ids) if well_formed else None
                out[b, g] = mdpr(elements, ref_elements, self.policy.decode(seq).actions, ref_cont,
                                 self.gripper_dim, self.cfg.mdpr)
        return out

    def kl_to_reference(self, obs: dict, tokens: torch.Tensor, repeat: int) -> torch.Tensor:
        """Mean per-token k3 KL(π_θ ‖ π_ref) on `tokens` (no gradient)."""
        tau = self.cfg.temperature
        with torch.no_grad():
            logp, logp_ref = self.model(obs, tokens, repeat, tau), self.reference(obs, tokens, repeat, tau)
            mask = self.policy.completion_mask(tokens).float()
            return (k3_kl(logp, logp_ref) * mask).sum() / mask.sum()

    def step(self, obs: dict, ref_chunks: torch.Tensor) -> dict:
        """Sample G completions per observation from π_old, score them, and update θ `epochs · minibatches` times
        on them. `ref_chunks` normalised."""
        cfg, G, tau = self.cfg, self.cfg.group_size, self.cfg.temperature
        self.model.eval()  # no augmentation / dropout: π_old, π_θ and π_ref see the same inputs
        tokens = self.policy.generate(obs, G, self.generator, tau)
        terms = self.score(tokens, ref_chunks)
        rewards = torch.as_tensor(terms[..., TERMS.index("mdpr")], dtype=torch.float32)
        advantages, keep = group_advantages(rewards, cfg.adv_std_floor)
        stats = {name: float(terms[..., i].mean()) for i, name in enumerate(TERMS)}
        stats.update(malformed=1.0 - stats["fcr"], reward_std=float(rewards.std(dim=1, unbiased=False).mean()),
                     groups_kept=int(keep.sum()), updates=0, loss=float("nan"), kl=float("nan"),
                     clip_frac=float("nan"), ratio_dev=float("nan"))
        if not keep.any():
            return stats
        # one row per kept completion: its observation repeated, so minibatches can mix groups
        kept = torch.nonzero(keep)[:, 0]
        rows = (kept[:, None] * G + torch.arange(G)).reshape(-1)
        row_obs = {"state": obs["state"].repeat_interleave(G, dim=0)[rows]}
        if "instruction" in obs:
            row_obs["instruction"] = [obs["instruction"][i // G] for i in rows.tolist()]
        if "images" in obs:
            row_obs["images"] = {c: v.repeat_interleave(G, dim=0)[rows] for c, v in obs["images"].items()}
        tokens = tokens[rows].to(self.accelerator.device)
        A = advantages.reshape(-1)[rows].to(self.accelerator.device)
        mask = self.policy.completion_mask(tokens)
        with torch.no_grad():
            logp_old = self.model(row_obs, tokens, 1, tau)
            logp_ref = self.reference(row_obs, tokens, 1, tau)
        history = []
        for _ in range(cfg.epochs):
            order = torch.randperm(len(rows), generator=self.generator)
            for part in order.chunk(min(cfg.minibatches, len(rows))):
                sub_obs = {"state": row_obs["state"][part]}
                if "instruction" in row_obs:
                    sub_obs["instruction"] = [row_obs["instruction"][i] for i in part.tolist()]
                if "images" in row_obs:
                    sub_obs["images"] = {c: v[part] for c, v in row_obs["images"].items()}
                loss, loss_stats = grpo_loss(self.model(sub_obs, tokens[part], 1, tau), logp_old[part],
                                             logp_ref[part], A[part], mask[part], cfg.clip_eps, cfg.kl_coef)
                self.optimizer.zero_grad(set_to_none=True)
                self.accelerator.backward(loss)
                self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                history.append(dict(loss_stats, loss=loss.item()))
        stats.update({k: float(np.mean([h[k] for h in history])) for k in history[0]}, updates=len(history))
        return stats


def reinforcement_finetune(policy: TokenizedPolicy, demos: Demos, cfg: RFTConfig, desc: str = "RFT",
                           accelerator=None) -> list[dict]:
    """Offline RFT: `cfg.iterations` GRPO steps on random demo batches; returns per-iteration stats."""
    _check_demos(policy, demos)
    trainer = GRPOTrainer(policy, cfg, accelerator)
    device = trainer.accelerator.device
    rng = np.random.default_rng([cfg.seed, trainer.accelerator.process_index])
    chunks = policy.normalizer.normalize_actions(torch.as_tensor(demos.chunks))
    history = []
    disable = not trainer.accelerator.is_main_process
    for _ in (bar := tqdm(range(cfg.iterations), desc=desc, unit="it", leave=False, disable=disable)):
        idx = rng.choice(len(demos), size=min(cfg.batch_size, len(demos)), replace=False)
        history.append(trainer.step(demos.obs(idx, device), chunks[idx]))
        recent = history[-20:]
        bar.set_postfix(mdpr=f"{np.mean([h['mdpr'] for h in recent]):.3f}",
                        qacr=f"{np.mean([h['qacr'] for h in recent]):.3f}",
                        clip=f"{np.nanmean([h['clip_frac'] for h in recent]):.3f}")
    policy.eval()
    return history


@torch.no_grad()
def malformed_rate(policy: TokenizedPolicy, demos: Demos, temperature: float, samples: int = 64,
                   seed: int = 0) -> float:
    """Share of completions that do not decode, sampled at `temperature` (0 = greedy) on random demo states: a
    check of the decoding path (0 under the constraint), not an assumption."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(demos), size=min(samples, len(demos)), replace=False)
    device = next(policy.parameters()).device
    tokens = policy.generate(demos.obs(idx, device), 1, torch.Generator().manual_seed(seed), temperature)
    return float(np.mean([not policy.decode(seq).valid for seq in tokens]))


def plot_reward_curves(history: list[dict], path: str | Path, title: str = "LifeLong-RFT") -> None:
    """One curve per MDPR term (moving average over iterations) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = max(1, len(history) // 25)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name in TERMS:
        values = np.asarray([h[name] for h in history])
        ax.plot(np.convolve(values, np.ones(window) / window, mode="valid"), label=name.upper())
    ax.set_xlabel("GRPO iteration")
    ax.set_ylabel(f"mean reward term (moving avg, {window} it)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_history(history: list[dict], path: str | Path, cfg: RFTConfig) -> None:
    Path(path).write_text(json.dumps({"config": cfg.model_dump(), "history": history}, indent=1))


def load_datasets(roots: list[str], action_names: list[str] | None, horizon: int, images: bool = False,
                  instruction: str | None = None) -> Demos:
    """Demos from several LeRobot datasets that share one action layout (the first's, unless `action_names`)."""
    names = action_names or LeRobotReader(roots[0]).action_names
    for root in roots:
        if LeRobotReader(root).action_names != names:
            raise DatasetError(f"{root}: actions {LeRobotReader(root).action_names} differ from {names}")
    return Demos.concat([load_demos(root, horizon, images=images, instruction=instruction) for root in roots])


def new_tokenized_policy(dataset: str | Path, demos: Demos, policy_fields: dict, pretrained_lm: bool = False):
    """A tokenized policy for a dataset's layout: normaliser and action tokenizer fitted on `demos`, the rest from
    config/rft.yaml's `policy` section (`policy_fields`); the LM's local checkpoint loaded when asked."""
    from robot_rl.core.state import has_environment_state
    from robot_rl.policies import PolicySpec, build_policy
    from robot_rl.policies.action_tokenizers import fit_tokenizer
    from robot_rl.policies.tokenized import TokenizedOptions

    reader = LeRobotReader(dataset)
    normalizer = demo_normalizer(demos)
    options = TokenizedOptions.model_validate(policy_fields.get("tokenized", {}))
    chunks = normalizer.normalize_actions(torch.as_tensor(demos.chunks)).numpy()
    options = options.model_copy(update={"tokenizer": fit_tokenizer(options.tokenizer, chunks)})
    fields = {k: v for k, v in policy_fields.items() if k != "tokenized"}
    spec = PolicySpec(type="tokenized", action_names=reader.action_names, state_dim=demos.states.shape[1],
                      environment_state=has_environment_state(reader.state_names), **fields,
                      tokenized=options.model_dump())
    policy = build_policy(spec, normalizer)
    if options.lm_path and pretrained_lm:
        policy.load_pretrained_lm()
    return policy
