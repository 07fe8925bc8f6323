"""DEG — dual-granularity contrastive reward along per-episode guidance (Liu et al., arXiv 2602.12636).

Pieces (the paper's §3; docs/rewards.md describes each choice made here):
  f          contrastive image encoder, trained from scratch with InfoNCE on expert videos, frozen during RL;
             z = f(o) is L2-normalised, so ⟨z, g⟩ is a cosine similarity.
  g_1..g_K   guidance latents for this episode, made once at reset by a guidance provider (guidance.py).
  reward     at step t, c_k = ⟨z_t, g_k⟩ and a pointer m (last guidance frame reached, m = 0 at reset):
               coarse  r_c = (k_new − m)/K  for the farthest k in (m, m+W] with c_k ≥ δ_c; then m ← k_new
               fine    r_f = max_{k∈[m−1, m+1]} c_k  if ≥ δ_f  else 0, divided by the expected matched steps
               r_t = α·(r_c + β·r_f)  (+ θ·1[success] for DEG+, added by the reward source)
The pointer only moves forward and pays only for new progress, so loitering earns no coarse reward.
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
    """f: (B, 3, 64, 64) float in [0, 1] → (B, dim) unit vectors. Four stride-2 convs with GroupNorm (per-sample
    statistics, so a frame's latent never depends on the rest of its batch)."""

    def __init__(self, dim: int = 64, width: int = 16):
        super().__init__()
        layers, ch = [], 3
        for out in (width, width, 2 * width, 2 * width):
            layers += [nn.Conv2d(ch, out, 3, 2, 1), nn.GroupNorm(8, out), nn.ReLU()]
            ch = out
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(ch * 16, dim)  # 64 → 4 after four stride-2 convs
        self.dim, self.width = dim, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(self.conv(x).flatten(1)), dim=-1)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 → (N, 3, 64, 64) float in [0, 1] (area-resized when H, W differ from 64)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 and frames.ndim != 3 or frames.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) or (N, H, W, 3) RGB frames, got shape {frames.shape}")
    x = torch.as_tensor(frames.reshape(-1, *frames.shape[-3:])).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="area")
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
    """Latents (N, dim) of uint8 frames (N, H, W, 3) or float tensors (N, 3, 64, 64)."""
    x = frames if isinstance(frames, torch.Tensor) else to_tensor(frames)
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
    clips = [to_tensor(v) for v in videos if len(v) > 0]
    if not clips:
        raise ValueError("no expert frames to train the DEG encoder on")
    encoder = DEGEncoder(cfg.dim, cfg.width)
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


# ---- reward ------------------------------------------------------------------------------------------------------
@dataclass
class DEGStep:
    coarse: float   # r_c
    fine: float     # r_f (already divided by the expected matched steps)
    pointer: int    # m after this step
    similarity: float  # best c_k around the pointer (diagnostics)
    reward: float   # α·(r_c + β·r_f)


class DEGReward:
    """The per-episode dual-granularity reward. `reset(G)` with this episode's guidance, then `step(z_t)`."""

    def __init__(self, params: DEGParams, fine_steps: float):
        if fine_steps <= 0:
            raise ValueError("fine_steps (expected matched steps per episode) must be positive")
        self.p = params
        self.fine_steps = params.fine_steps or fine_steps
        self.guidance: torch.Tensor | None = None
        self.m = 0

    def reset(self, guidance: torch.Tensor) -> None:
        if guidance.ndim != 2 or len(guidance) < 2:
            raise ValueError(f"guidance latents must be (K ≥ 2, d), got {tuple(guidance.shape)}")
        self.guidance = F.normalize(guidance.float(), dim=-1)
        self.m = 0

    @property
    def num_frames(self) -> int:
        return 0 if self.guidance is None else len(self.guidance)

    def step(self, z: torch.Tensor) -> DEGStep:
        if self.guidance is None:
            raise RuntimeError("DEGReward.step before reset(guidance)")
        G, K, m, p = self.guidance, len(self.guidance), self.m, self.p
        sims = G @ z.reshape(-1).float()                                 # c_k = ⟨z_t, g_k⟩
        idx = torch.arange(K)
        ok = (idx > m) & (idx <= m + p.window) & (sims >= p.coarse_threshold)
        r_c = 0.0
        if bool(ok.any()):                                               # coarse: new progress only
            k_new = int(idx[ok].max())
            r_c, self.m = (k_new - m) / (K - 1), k_new
        lo, hi = max(self.m - 1, 0), min(self.m + 2, K)
        s_best = float(sims[lo:hi].max())                                # fine: tight match around the pointer
        r_f = s_best / self.fine_steps if s_best >= p.fine_threshold else 0.0
        return DEGStep(r_c, r_f, self.m, s_best, p.alpha * (r_c + p.beta * r_f))


# ---- bundle on disk ----------------------------------------------------------------------------------------------
ENCODER_FILE = "encoder.safetensors"
META_FILE = "deg.json"


def save_encoder(encoder: DEGEncoder, root: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(root / ENCODER_FILE))
    (root / META_FILE).write_text(json.dumps({"dim": encoder.dim, "width": encoder.width, **meta}, indent=2))


def load_encoder(root: Path) -> tuple[DEGEncoder, dict]:
    from safetensors.torch import load_file

    meta_path, weights = Path(root) / META_FILE, Path(root) / ENCODER_FILE
    if not meta_path.exists() or not weights.exists():
        raise FileNotFoundError(f"{root}: not a DEG model directory (needs {META_FILE} and {ENCODER_FILE}); "
                                "train one with `robot-rl deg train`")
    meta = json.loads(meta_path.read_text())
    encoder = DEGEncoder(meta["dim"], meta["width"])
    encoder.load_state_dict(load_file(str(weights)))
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder, meta


def training_meta(cfg: EncoderTraining, videos: list[np.ndarray], dataset: str, camera: str, task: str) -> dict:
    return {"training": asdict(cfg), "dataset": dataset, "camera": camera, "task": task,
            "mean_episode_length": float(np.mean([len(v) for v in videos]))}
