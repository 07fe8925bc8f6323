"""Diffusion chunk policy (Chi et al., Diffusion Policy): FiLM-conditioned 1-D U-Net over the chunk axis, ε-prediction.

  training  x_t = √ᾱ_t A + √(1 − ᾱ_t) ε,   ε ~ N(0, I),  t ~ U{0..T−1}
            (DDPM noise schedule squaredcos_cap_v2, T = diffusion_train_steps)
            ℓ_θ(A|s) = mean over chunk elements of (ε_θ(x_t, t, s) − ε)²
  sampling  DDIM (η = 0) with diffusion_infer_steps steps from x_T ~ N(0, I); output clipped to [-1, 1]

U-Net widths: `depth` levels, the top one `hidden_dim` wide and each lower one half as wide (hidden_dim 256, depth 3 →
64-128-256, the "small" configuration timed in the feasibility study). There are depth − 1 down-samplings by 2, so
a chunk of H steps is replicate-padded at its end to a multiple of 2^(depth−1) (H = 5, depth 3 → 8) and the output
cropped back to H; the loss only covers the H real steps.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # diffusers is only used for its schedulers: never reach for the hub

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from diffusers import DDIMScheduler, DDPMScheduler  # noqa: E402
from torch import nn  # noqa: E402

from robot_rl.policies.activations import Mish  # noqa: E402
from robot_rl.policies.base import ChunkPolicy, PolicySpec  # noqa: E402
from robot_rl.policies.encoders import ObservationEncoder, sinusoidal_embedding  # noqa: E402
from robot_rl.policies.noise import Noise, as_noise  # noqa: E402
from robot_rl.policies.normalizer import Normalizer  # noqa: E402

TIME_EMBED_DIM = 128
KERNEL_SIZE = 5
GROUPS = 8


class Conv1dBlock(nn.Sequential):
    """Conv1d → GroupNorm → Mish."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(nn.Conv1d(in_ch, out_ch, KERNEL_SIZE, padding=KERNEL_SIZE // 2), nn.GroupNorm(GROUPS, out_ch),
                         Mish())


class ConditionalResidualBlock1D(nn.Module):
    """Two Conv1dBlocks; the condition c sets a per-channel FiLM scale γ(c) and shift β(c) between them."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int):
        super().__init__()
        self.block1 = Conv1dBlock(in_ch, out_ch)
        self.block2 = Conv1dBlock(out_ch, out_ch)
        self.film = nn.Sequential(Mish(), nn.Linear(cond_dim, 2 * out_ch))
        self.residual = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(cond)[:, :, None].chunk(2, dim=1)
        y = gamma * self.block1(x) + beta
        return self.block2(y) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """ε_θ(x_t, t, c): x_t (B, D, L) with L a multiple of 2^(len(widths)−1), t (B,), global condition c (B, C)."""

    def __init__(self, action_dim: int, cond_dim: int, widths: list[int]):
        super().__init__()
        self.time_mlp = nn.Sequential(nn.Linear(TIME_EMBED_DIM, 4 * TIME_EMBED_DIM), Mish(),
                                      nn.Linear(4 * TIME_EMBED_DIM, TIME_EMBED_DIM))
        cond_dim += TIME_EMBED_DIM
        levels = list(zip([action_dim] + widths[:-1], widths))  # (in, out) channels per level
        self.down = nn.ModuleList(
            nn.ModuleList([ConditionalResidualBlock1D(c_in, c_out, cond_dim),
                           ConditionalResidualBlock1D(c_out, c_out, cond_dim),
                           nn.Conv1d(c_out, c_out, 3, 2, 1) if i < len(levels) - 1 else nn.Identity()])
            for i, (c_in, c_out) in enumerate(levels))
        self.mid = nn.ModuleList([ConditionalResidualBlock1D(widths[-1], widths[-1], cond_dim) for _ in range(2)])
        self.up = nn.ModuleList(
            nn.ModuleList([ConditionalResidualBlock1D(2 * c_out, c_in, cond_dim),
                           ConditionalResidualBlock1D(c_in, c_in, cond_dim),
                           nn.ConvTranspose1d(c_in, c_in, 4, 2, 1)])
            for c_in, c_out in reversed(levels[1:]))
        self.final = nn.Sequential(Conv1dBlock(widths[0], widths[0]), nn.Conv1d(widths[0], action_dim, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = torch.cat([self.time_mlp(sinusoidal_embedding(t, TIME_EMBED_DIM)), cond], dim=-1)
        skips = []
        for block1, block2, downsample in self.down:
            x = block2(block1(x, c), c)
            skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, c)
        for block1, block2, upsample in self.up:  # as in Chi et al., the top level's skip is not used
            x = upsample(block2(block1(torch.cat([x, skips.pop()], dim=1), c), c))
        return self.final(x)


class DiffusionPolicy(ChunkPolicy):
    def __init__(self, spec: PolicySpec, normalizer: Normalizer | None = None):
        super().__init__()
        if spec.type != "diffusion":
            raise ValueError(f"DiffusionPolicy needs spec.type 'diffusion', got {spec.type!r}")
        widths = [spec.hidden_dim // 2 ** (spec.depth - 1 - i) for i in range(spec.depth)]
        if any(w < GROUPS or w % GROUPS for w in widths):
            raise ValueError(f"diffusion U-Net widths {widths} (from hidden_dim {spec.hidden_dim}, depth {spec.depth}) "
                             f"must be multiples of {GROUPS}")
        self.spec = spec
        self.normalizer = normalizer if normalizer is not None else Normalizer(spec.action_dim, spec.state_dim)
        self.encoder = ObservationEncoder(spec)
        self.unet = ConditionalUnet1D(spec.action_dim, self.encoder.out_dim, widths)
        factor = 2 ** (spec.depth - 1)
        self.padded_horizon = -(-spec.horizon // factor) * factor
        schedule = dict(num_train_timesteps=spec.diffusion_train_steps, beta_schedule="squaredcos_cap_v2",
                        clip_sample=True, prediction_type="epsilon")
        self.train_scheduler = DDPMScheduler(**schedule)
        self.sample_scheduler = DDIMScheduler(**schedule)
        self.sample_scheduler.set_timesteps(spec.diffusion_infer_steps)

    def encode(self, obs: dict, augment: bool = False, noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        return self.encoder(self.normalizer.normalize_state(obs["state"]), obs.get("images"), augment, noise)

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """ε_θ for chunks x_t (B, H, D) → (B, H, D); pads the chunk axis for the U-Net and crops it back."""
        x = F.pad(x_t.transpose(1, 2), (0, self.padded_horizon - self.spec.horizon), mode="replicate")
        return self.unet(x, t, cond)[:, :, : self.spec.horizon].transpose(1, 2)

    def loss(self, obs: dict, actions_normalized: torch.Tensor, cond: torch.Tensor | None = None,
             noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        noise = as_noise(noise)
        cond = self.encode(obs, augment=self.training, noise=noise) if cond is None else cond
        A = actions_normalized
        eps = noise.randn(*A.shape, device=A.device)
        t = noise.randint(self.spec.diffusion_train_steps, A.shape[0], device=A.device)
        x_t = self.train_scheduler.add_noise(A, eps, t)
        return (self.predict_noise(x_t, t, cond) - eps).pow(2).mean(dim=(1, 2))

    @torch.no_grad()
    def sample_normalized(self, obs: dict, n: int = 1, noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        cond = self.encode(obs).repeat_interleave(n, dim=0)  # encode once → (B·n, F); a state's candidates adjacent
        x = as_noise(noise).randn(cond.shape[0], self.spec.horizon, self.spec.action_dim, device=cond.device)  # x_T
        for t in self.sample_scheduler.timesteps:
            eps = self.predict_noise(x, t.expand(x.shape[0]).to(x.device), cond)
            x = self.sample_scheduler.step(eps, t, x).prev_sample  # DDIM, η = 0: deterministic given x_T
        return x.clamp(-1.0, 1.0).view(-1, n, self.spec.horizon, self.spec.action_dim)
