"""DEG — dual-granularity contrastive reward along per-episode guidance (Liu et al., arXiv 2602.12636).

Pieces (the paper's §3; docs/rewards.md describes each choice made here):
  f          contrastive image encoder, trained from scratch with InfoNCE on expert videos, frozen during RL;
             z = f(o) is L2-normalised, so ⟨z, g⟩ is a cosine similarity.
  g_1..g_K   guidance latents for this episode, made once at reset by a guidance provider (guidance.py).
  δ_c, δ_f   coarse and fine cosine thresholds, calibrated on held-out matched vs mismatched pairs (`calibrate`).
  reward     at step t, c_k = ⟨z_t, g_k⟩ and a pointer m (last guidance frame reached, m = 0 at reset):
               coarse  k* = argmax_{k∈[m, m+W]} c_k; if k* > m and c_{k*} ≥ δ_c then m ← k*   (order matters)
               fine    φ_f = clip((c_m − δ_f)/(1 − δ_f), 0, 1), the tightness of the match to the frame reached
               Φ       = α·(m + β·φ_f)/(K − 1),  β ≤ 1 so that reaching frame m+1 never lowers Φ
               r_t     = γΦ(s_{t+1}) − Φ(s_t)     payment `potential` (default; Ng et al. 1999)
                         (1 − γ)·Φ(s_{t+1})      payment `level`
                         (+ θ·1[success] for DEG+, added by the reward source)
Either way no behaviour can collect dense reward forever: over any horizon the discounted dense return is at most
max Φ = α(1 + β/(K − 1)) < θ, so succeeding beats hovering. They differ for a learner (docs/rewards.md measures
both): on the claim bench DEG+ reached the goal more often paid as a potential, whose per-step cost −(1 − γ)Φ at a
pointer that never moves back presses on to the end; a level pays for sitting at a frame reached.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from robot_rl.policies.encoders import random_shift
from robot_rl.rewards.params import DEGParams

IMAGE_SIZE = 64


# ---- encoder -----------------------------------------------------------------------------------------------------
class DEGEncoder(nn.Module):
    """f: (B, 3, S, S) float in [0, 1] → (B, dim) unit vectors, S = `image_size` (a multiple of 16; larger S
    resolves finer goals). Four stride-2 convs with GroupNorm (per-sample statistics, so a frame's latent never
    depends on the rest of its batch)."""

    def __init__(self, dim: int = 64, width: int = 16, image_size: int = IMAGE_SIZE):
        super().__init__()
        if image_size % 16:
            raise ValueError(f"DEG encoder image_size must be a multiple of 16, got {image_size}")
        layers, ch = [], 3
        for out in (width, width, 2 * width, 2 * width):
            layers += [nn.Conv2d(ch, out, 3, 2, 1), nn.GroupNorm(8, out), nn.ReLU()]
            ch = out
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(ch * (image_size // 16) ** 2, dim)  # S → S/16 after four stride-2 convs
        self.dim, self.width, self.image_size = dim, width, image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(self.conv(x).flatten(1)), dim=-1)


def to_tensor(frames: np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    """(..., H, W, 3) uint8 → (N, 3, size, size) float in [0, 1] (area-resized when H, W differ)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 and frames.ndim != 3 or frames.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) or (N, H, W, 3) RGB frames, got shape {frames.shape}")
    x = torch.as_tensor(frames.reshape(-1, *frames.shape[-3:])).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    return x


def colour_jitter(x: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample brightness, contrast and per-channel gain in [1 − s, 1 + s]."""
    b = x.shape[0]
    u = lambda *shape: 1.0 + strength * (2 * torch.rand(*shape, generator=generator) - 1)  # noqa: E731
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(b, 1, 1, 1) + mean * u(b, 1, 1, 1)
    return (x * u(b, 3, 1, 1)).clamp(0, 1)


def augment(x: torch.Tensor, pad: int = 4, jitter: float = 0.2) -> torch.Tensor:
    return colour_jitter(random_shift(x, pad), jitter)


@torch.no_grad()
def encode(encoder: DEGEncoder, frames: np.ndarray | torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Latents (N, dim) of uint8 frames (N, H, W, 3) or float tensors (N, 3, S, S)."""
    x = frames if isinstance(frames, torch.Tensor) else to_tensor(frames, encoder.image_size)
    encoder.eval()
    if len(x) == 0:
        return torch.zeros(0, encoder.dim)
    return torch.cat([encoder(x[i:i + batch]) for i in range(0, len(x), batch)])


@dataclass
class EncoderTraining:
    steps: int = 1500
    batch: int = 64
    lr: float = 1e-3
    temperature: float = 0.1     # τ of InfoNCE
    neighbour: int = 2           # positives: the same frame or a frame up to ±neighbour steps away, same video
    cross_video: float = 0.5     # share of positives taken from another video at the same normalised time
    dim: int = 64
    width: int = 16
    image_size: int = IMAGE_SIZE  # frames are resized to this before f
    seed: int = 0


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of `a` and row i of `b` are positives, every other row in the batch is a negative."""
    logits = a @ b.T / temperature
    labels = torch.arange(len(a))
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def train_encoder(videos: list[np.ndarray], cfg: EncoderTraining) -> tuple[DEGEncoder, list[float]]:
    """Train f from scratch on expert videos (each (T, H, W, 3) uint8); returns (f, loss per step).

    A positive pair is two independent augmentations (random shift + colour jitter) of frame t and of frame t+δ,
    |δ| ≤ neighbour, of the same video or (share `cross_video`) of the frame at the same normalised time t/T in
    another video, so that latents track task progress across initial states. A projection head (dropped after
    training) carries the loss."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    clips = [to_tensor(v, cfg.image_size) for v in videos if len(v) > 0]
    if not clips:
        raise ValueError("no expert frames to train the DEG encoder on")
    encoder = DEGEncoder(cfg.dim, cfg.width, cfg.image_size)
    head = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.ReLU(), nn.Linear(cfg.dim, cfg.dim))
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=cfg.lr)
    losses = []
    encoder.train()
    for _ in tqdm(range(cfg.steps), desc="DEG encoder (InfoNCE)", unit="step"):
        vid = rng.integers(len(clips), size=cfg.batch)
        t = np.array([rng.integers(len(clips[v])) for v in vid])
        vid2 = np.where(rng.random(cfg.batch) < cfg.cross_video, rng.integers(len(clips), size=cfg.batch), vid)
        t2 = [int(np.clip(round(ti / max(len(clips[v]) - 1, 1) * (len(clips[v2]) - 1))
                          + rng.integers(-cfg.neighbour, cfg.neighbour + 1), 0, len(clips[v2]) - 1))
              for v, v2, ti in zip(vid, vid2, t)]
        x1 = augment(torch.stack([clips[v][i] for v, i in zip(vid, t)]))
        x2 = augment(torch.stack([clips[v][i] for v, i in zip(vid2, t2)]))
        loss = info_nce(F.normalize(head(encoder(x1)), dim=-1), F.normalize(head(encoder(x2)), dim=-1),
                        cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)  # frozen during RL: rewards stay stationary
    return encoder, losses


def resample(latents: torch.Tensor, k: int) -> torch.Tensor:
    """K frames at uniform normalised time τ_k = k/(K−1) of a (T, d) sequence (nearest frame)."""
    idx = torch.round(torch.linspace(0, len(latents) - 1, k)).long()
    return latents[idx]


# ---- thresholds ----------------------------------------------------------------------------------------------
@dataclass
class Calibration:
    """δ_c and δ_f read off the encoder's own similarity distributions on held-out expert episodes: matched pairs
    (a real frame and the guidance frame nearest in normalised time) against mismatched ones (more than
    `MISMATCH_GAP` apart). δ_c is loose, for exploration: it passes all but 5 % of mismatched pairs' similarities
    (and at least 90 % of matched ones); a missed match stalls the pointer, while the window keeps a loose one in
    order. δ_f is tight: the median matched similarity (at least δ_c)."""

    coarse_threshold: float
    fine_threshold: float
    roc_auc: float               # P(matched similarity > mismatched similarity)
    coarse_true_positive: float  # share of matched pairs ≥ δ_c
    coarse_false_positive: float  # share of mismatched pairs ≥ δ_c
    matched_mean: float
    mismatched_mean: float
    pairs: int                   # matched pairs it was computed from


MISMATCH_GAP = 0.25


def calibrate(similarity: list[np.ndarray]) -> Calibration:
    """Thresholds from similarity maps, one (T_i, K) array per held-out episode: row i is real frame at normalised
    time i/(T−1), column k guidance frame k/(K−1)."""
    from robot_rl.core.stats import roc_auc

    matched, mismatched = [], []
    for sims in similarity:
        sims = np.asarray(sims)
        gap = np.abs(np.linspace(0, 1, len(sims))[:, None] - np.linspace(0, 1, sims.shape[1])[None, :])
        nearest = gap == gap.min(axis=1, keepdims=True)
        matched.append(sims[nearest])
        mismatched.append(sims[gap > MISMATCH_GAP])
    matched, mismatched = np.concatenate(matched), np.concatenate(mismatched)
    if not len(matched) or not len(mismatched):
        raise ValueError("threshold calibration needs held-out episodes with matched and mismatched pairs")
    coarse = float(min(np.quantile(mismatched, 0.95), np.quantile(matched, 0.10)))
    fine = max(coarse, float(np.median(matched)))
    return Calibration(coarse, fine, roc_auc(matched, mismatched), float((matched >= coarse).mean()),
                       float((mismatched >= coarse).mean()), float(matched.mean()), float(mismatched.mean()),
                       len(matched))


# ---- reward ------------------------------------------------------------------------------------------------------
@dataclass
class DEGStep:
    coarse: float      # the pointer's part of the payment: α·(1 − γ)·m′/(K − 1) or α·(γ·m′ − m)/(K − 1)
    fine: float        # the fine match's part: α·β·(1 − γ)·φ_f′/(K − 1) or α·β·(γ·φ_f′ − φ_f)/(K − 1)
    goal: float        # the match to the last frame, once the pointer is there (0 with κ = 0), paid the same way
    pointer: int       # m after this step
    progress: float    # m/(K − 1), the pointer as a fraction (part of the learner's observation)
    similarity: float  # c_m, the match to the guidance frame reached (diagnostics)
    reward: float      # coarse + fine + goal


def pay(before: float, after: float, gamma: float, payment: str) -> float:
    """One step's reward for a potential going from `before` to `after`: γΦ(s′) − Φ(s), or (1 − γ)Φ(s′) (level)."""
    return (1 - gamma) * after if payment == "level" else gamma * after - before


class DEGReward:
    """The per-episode dual-granularity reward. `reset(G)` with this episode's guidance, then `step(z_t)`.
    Thresholds are the parameters', or the calibrated ones stored with the encoder when those are None."""

    def __init__(self, params: DEGParams, calibration: Calibration | dict | None = None):
        cal = Calibration(**calibration) if isinstance(calibration, dict) else calibration
        if cal is None and (params.coarse_threshold is None or params.fine_threshold is None):
            raise ValueError("DEG thresholds are not set and the model has no calibration (retrain it with "
                             "`robot-rl deg train`, which calibrates δ_c and δ_f)")
        self.p = params
        self.coarse_threshold = cal.coarse_threshold if params.coarse_threshold is None else params.coarse_threshold
        self.fine_threshold = cal.fine_threshold if params.fine_threshold is None else params.fine_threshold
        if self.fine_threshold >= 1:
            raise ValueError(f"δ_f must be below 1 (cosine), got {self.fine_threshold}")
        self.guidance: torch.Tensor | None = None
        self.m = 0
        self.fine_part = 0.0  # α·β·φ_f/(K − 1) at the previous step
        self.goal_part = 0.0  # α·κ·φ_g at the previous step

    def reset(self, guidance: torch.Tensor) -> None:
        if guidance.ndim != 2 or len(guidance) < 2:
            raise ValueError(f"guidance latents must be (K ≥ 2, d), got {tuple(guidance.shape)}")
        self.guidance = F.normalize(guidance.float(), dim=-1)
        self.m = 0
        self.fine_part = self.goal_part = 0.0  # Φ(s_0) := 0: a constant offset of every return, no effect on the policy

    @property
    def num_frames(self) -> int:
        return 0 if self.guidance is None else len(self.guidance)

    def step(self, z: torch.Tensor) -> DEGStep:
        if self.guidance is None:
            raise RuntimeError("DEGReward.step before reset(guidance)")
        G, K, m, p = self.guidance, len(self.guidance), self.m, self.p
        sims = G @ z.reshape(-1).float()                                   # c_k = ⟨z_t, g_k⟩
        window = sims[m:min(m + p.window, K - 1) + 1]
        k_best = m + int(torch.argmax(window))                             # coarse: best match in [m, m+W]
        if k_best > m and float(sims[k_best]) >= self.coarse_threshold:
            self.m = k_best
        c_m = float(sims[self.m])                                          # fine: tightness of the match to m
        phi_f = min(max((c_m - self.fine_threshold) / (1 - self.fine_threshold), 0.0), 1.0)
        scale = p.alpha / (K - 1)
        coarse_part, fine_part = scale * self.m, scale * p.beta * phi_f    # Φ = α(m + β φ_f)/(K − 1)
        # goal: at the last frame, the match floored at δ_c (δ_f leaves the last centimetres flat)  + α κ φ_g
        phi_g = min(max((c_m - self.coarse_threshold) / (1 - self.coarse_threshold), 0.0), 1.0)
        goal_part = p.alpha * p.goal_weight * phi_g if self.m == K - 1 else 0.0
        coarse = pay(scale * m, coarse_part, p.gamma, p.payment)
        fine = pay(self.fine_part, fine_part, p.gamma, p.payment)
        goal = pay(self.goal_part, goal_part, p.gamma, p.payment)
        self.fine_part, self.goal_part = fine_part, goal_part
        return DEGStep(coarse, fine, goal, self.m, self.m / (K - 1), c_m, coarse + fine + goal)


# ---- bundle on disk ----------------------------------------------------------------------------------------------
ENCODER_FILE = "encoder.safetensors"
META_FILE = "deg.json"


def save_encoder(encoder: DEGEncoder, root: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(root / ENCODER_FILE))
    (root / META_FILE).write_text(json.dumps({"dim": encoder.dim, "width": encoder.width,
                                              "image_size": encoder.image_size, **meta}, indent=2))


def load_encoder(root: Path) -> tuple[DEGEncoder, dict]:
    from safetensors.torch import load_file

    meta_path, weights = Path(root) / META_FILE, Path(root) / ENCODER_FILE
    if not meta_path.exists() or not weights.exists():
        raise FileNotFoundError(f"{root}: not a DEG model directory (needs {META_FILE} and {ENCODER_FILE}); "
                                "train one with `robot-rl deg train`")
    meta = json.loads(meta_path.read_text())
    encoder = DEGEncoder(meta["dim"], meta["width"], meta.get("image_size", IMAGE_SIZE))
    encoder.load_state_dict(load_file(str(weights)))
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder, meta


def training_meta(cfg: EncoderTraining, videos: list[np.ndarray], dataset: str, camera: str, task: str) -> dict:
    return {"training": asdict(cfg), "dataset": dataset, "camera": camera, "task": task,
            "mean_episode_length": float(np.mean([len(v) for v in videos]))}
