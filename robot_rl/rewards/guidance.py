"""Episodic guidance for DEG: `make_guidance(first_frame, task) -> Guidance` (K latents, optionally K frames).

The paper generates a guidance video per episode with a LoRA-tuned 14B image-to-video model (Wan2.1-I2V). Those
weights cannot be downloaded here, so three SUBSTITUTES sit behind the same interface (a GPU host can add a real
video model as a fourth provider that returns frames):
  latent     S2: h(z_0, τ) → g_τ, an MLP from the first-frame latent and normalised time to the guidance latent,
             trained on the expert videos' latents (no pixels are generated).
  diffusion  S3: a small conditional DDPM (`diffusers` UNet2DModel, 64×64) generating frame τ from the first frame
             (channel concat) and τ (class embedding of the time bin); the frames are encoded by f.
  nearest    S1: the expert video whose first frame is nearest in f-space, time-warped (uniformly resampled) to K.
Guidance is made once per episode at reset and cached by the caller; it never runs inside the control loop.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from robot_rl.policies.activations import Mish
from robot_rl.policies.encoders import random_shift
from robot_rl.rewards.deg import DEGEncoder, augment, encode, resample, to_tensor

PROVIDERS = ("latent", "diffusion", "nearest")


@dataclass
class Guidance:
    latents: torch.Tensor            # (K, d) unit vectors g_1..g_K
    frames: np.ndarray | None = None  # (K, H, W, 3) uint8 when the provider makes pixels


class GuidanceProvider(ABC):
    name = ""

    def __init__(self, encoder: DEGEncoder, num_frames: int):
        self.encoder, self.num_frames = encoder, num_frames

    @abstractmethod
    def make_guidance(self, first_frame: np.ndarray, task: str) -> Guidance:
        """Guidance for an episode that starts at `first_frame` ((H, W, 3) uint8)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def save(self, root: Path) -> None:
        from safetensors.torch import save_file

        tensors = {k: v.contiguous() for k, v in self.state_dict().items()}
        if tensors:
            save_file(tensors, str(root / f"guidance_{self.name}.safetensors"))


# ---- (c) nearest expert video, time-warped -------------------------------------------------------------------------
class NearestExpertGuidance(GuidanceProvider):
    name = "nearest"

    def __init__(self, encoder: DEGEncoder, num_frames: int, videos: list[np.ndarray] | None = None,
                 tensors: dict[str, torch.Tensor] | None = None):
        super().__init__(encoder, num_frames)
        if tensors is None:
            lat = [encode(encoder, v) for v in videos or []]
            if not lat:
                raise ValueError("nearest-expert guidance needs at least one expert video")
            tensors = {"first": torch.stack([z[0] for z in lat]),
                       "latents": torch.stack([resample(z, num_frames) for z in lat])}
        self.first, self.latents = tensors["first"], tensors["latents"]  # (V, d), (V, K, d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"first": self.first, "latents": self.latents}

    def make_guidance(self, first_frame: np.ndarray, task: str) -> Guidance:
        z0 = encode(self.encoder, first_frame)[0]
        return Guidance(self.latents[int(torch.argmax(self.first @ z0))].clone())


# ---- (a) latent guidance predictor ------------------------------------------------------------------------------
class LatentPredictor(nn.Module):
    """h(z_0, τ) → g_τ: an MLP over the first-frame latent and a sinusoidal code of τ ∈ [0, 1]."""

    def __init__(self, dim: int, hidden: int = 256, freqs: int = 8):
        super().__init__()
        self.freqs = freqs
        self.net = nn.Sequential(nn.Linear(dim + 2 * freqs, hidden), Mish(), nn.Linear(hidden, hidden), Mish(),
                                 nn.Linear(hidden, dim))

    def forward(self, z0: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        angles = tau[:, None] * (2.0 ** torch.arange(self.freqs)) * torch.pi
        return F.normalize(self.net(torch.cat([z0, angles.sin(), angles.cos()], -1)), dim=-1)


class LatentGuidance(GuidanceProvider):
    name = "latent"

    def __init__(self, encoder: DEGEncoder, num_frames: int, net: LatentPredictor):
        super().__init__(encoder, num_frames)
        self.net = net.eval()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()

    @torch.no_grad()
    def make_guidance(self, first_frame: np.ndarray, task: str) -> Guidance:
        z0 = encode(self.encoder, first_frame)
        tau = torch.linspace(0, 1, self.num_frames)
        return Guidance(self.net(z0.expand(self.num_frames, -1), tau))

    @classmethod
    def train(cls, encoder: DEGEncoder, videos: list[np.ndarray], num_frames: int, steps: int = 1500,
              seed: int = 0, augmentations: int = 32) -> tuple[LatentGuidance, list[float]]:
        """Fit h on (augmented first frame, τ_k) → f(expert frame at τ_k) with a cosine loss; the first frames'
        latents are computed once for `augmentations` random shift / colour draws each."""
        torch.manual_seed(seed)
        firsts = torch.stack([to_tensor(v[:1], encoder.image_size)[0] for v in videos])    # (V, 3, S, S)
        bank = torch.stack([encode(encoder, augment(firsts)) for _ in range(augmentations)], 1)  # (V, A, d)
        targets = torch.stack([resample(encode(encoder, v), num_frames) for v in videos])  # (V, K, d)
        net = LatentPredictor(encoder.dim)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        losses = []
        for _ in tqdm(range(steps), desc="DEG latent guidance", unit="step"):
            v = torch.randint(len(videos), (128,))
            a = torch.randint(augmentations, (128,))
            k = torch.randint(num_frames, (128,))
            loss = (1 - (net(bank[v, a], k.float() / (num_frames - 1)) * targets[v, k]).sum(-1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return cls(encoder, num_frames, net), losses


# ---- (b) small conditional frame generator (diffusers) ---------------------------------------------------------------
def make_unet(time_bins: int):
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=64, in_channels=6, out_channels=3, block_out_channels=(32, 64, 64),
                       down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3, layers_per_block=1,
                       num_class_embeds=time_bins, norm_num_groups=8)


class DiffusionGuidance(GuidanceProvider):
    """x_τ ~ p(x | first frame, τ): ε-prediction DDPM trained on expert frames, sampled with DDIM."""

    name = "diffusion"

    def __init__(self, encoder: DEGEncoder, num_frames: int, unet, time_bins: int, sample_steps: int = 20):
        super().__init__(encoder, num_frames)
        self.unet, self.time_bins, self.sample_steps = unet.eval(), time_bins, sample_steps

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.unet.state_dict()

    def _bins(self, tau: torch.Tensor) -> torch.Tensor:
        return torch.clamp((tau * self.time_bins).long(), max=self.time_bins - 1)

    @torch.no_grad()
    def make_guidance(self, first_frame: np.ndarray, task: str) -> Guidance:
        from diffusers import DDIMScheduler

        scheduler = DDIMScheduler(num_train_timesteps=1000)
        scheduler.set_timesteps(self.sample_steps)
        cond = to_tensor(first_frame) * 2 - 1                                     # (1, 3, 64, 64) in [-1, 1]
        labels = self._bins(torch.linspace(0, 1, self.num_frames))
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(self.num_frames, 3, 64, 64, generator=gen)
        for t in scheduler.timesteps:
            eps = self.unet(torch.cat([x, cond.expand(len(x), -1, -1, -1)], 1), t, class_labels=labels).sample
            x = scheduler.step(eps, t, x).prev_sample
        frames = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        return Guidance(encode(self.encoder, frames), frames)

    @classmethod
    def train(cls, encoder: DEGEncoder, videos: list[np.ndarray], num_frames: int, steps: int = 2000,
              time_bins: int = 16, batch: int = 16, seed: int = 0) -> tuple[DiffusionGuidance, list[float]]:
        from diffusers import DDPMScheduler

        torch.manual_seed(seed)
        clips = [to_tensor(v) * 2 - 1 for v in videos]
        unet = make_unet(time_bins)
        scheduler = DDPMScheduler(num_train_timesteps=1000)
        opt = torch.optim.AdamW(unet.parameters(), lr=2e-4)
        provider = cls(encoder, num_frames, unet, time_bins)
        unet.train()
        losses = []
        for _ in tqdm(range(steps), desc="DEG frame generator (DDPM)", unit="step"):
            v = np.random.randint(len(clips), size=batch)
            t = [np.random.randint(len(clips[i])) for i in v]
            target = torch.stack([clips[i][j] for i, j in zip(v, t)])
            first = torch.stack([clips[i][0] for i in v])
            target, first = random_shift(torch.cat([target, first], 1), 4).split(3, 1)  # one shift per pair
            tau = torch.tensor([j / max(len(clips[i]) - 1, 1) for i, j in zip(v, t)])
            noise = torch.randn_like(target)
            steps_t = torch.randint(0, 1000, (batch,))
            noisy = scheduler.add_noise(target, noise, steps_t)
            eps = unet(torch.cat([noisy, first], 1), steps_t, class_labels=provider._bins(tau)).sample
            loss = F.mse_loss(eps, noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        unet.eval()
        return provider, losses


# ---- loading ----------------------------------------------------------------------------------------------------
def load_provider(root: Path, name: str, encoder: DEGEncoder, meta: dict) -> GuidanceProvider:
    """The guidance provider `name` saved next to a DEG encoder by `robot-rl deg train`."""
    from safetensors.torch import load_file

    if name not in PROVIDERS:
        raise ValueError(f"unknown guidance provider {name!r}; choose one of {PROVIDERS}")
    path = Path(root) / f"guidance_{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: train it with `robot-rl deg train --guidance {name}`")
    tensors = load_file(str(path))
    k = int(meta["num_frames"])
    if name == "nearest":
        return NearestExpertGuidance(encoder, k, tensors=tensors)
    if name == "latent":
        net = LatentPredictor(encoder.dim)
        net.load_state_dict(tensors)
        return LatentGuidance(encoder, k, net)
    bins = int(meta["diffusion_time_bins"])
    unet = make_unet(bins)
    unet.load_state_dict(tensors)
    return DiffusionGuidance(encoder, k, unet, bins)


def save_provider_meta(root: Path, **fields) -> None:
    """Merge guidance fields (num_frames, trained providers, ...) into deg.json."""
    path = Path(root) / "deg.json"
    meta = json.loads(path.read_text())
    meta.update(fields)
    path.write_text(json.dumps(meta, indent=2))
