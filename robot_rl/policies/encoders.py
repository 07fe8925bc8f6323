"""Observation encoder shared by the chunk policies: normalised state ⊕ one small CNN feature per camera.

The CNN is a ResNet-10 topology (stem + one BasicBlock per stage) at half ResNet width with GroupNorm instead of
BatchNorm — as in Diffusion Policy (Chi et al.), GroupNorm keeps every sample independent of the rest of the batch,
which the per-sample losses ℓ_θ(A|s) need. Written in plain torch (no torchvision here); trained from scratch.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.policies.base import PolicySpec
from robot_rl.policies.noise import Noise, as_noise

IMAGE_WIDTHS = (32, 64, 128, 256)  # channels of the four residual stages
IMAGE_FEATURE_DIM = 128  # per camera
GROUPS = 8  # GroupNorm groups


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer/DDPM sinusoidal embedding of scalar times t (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def random_shift(images: torch.Tensor, pad: int, noise: Noise | torch.Generator | None = None) -> torch.Tensor:
    """DrQ-style augmentation: replicate-pad by `pad` pixels, then crop back at a random integer offset per sample
    (drawn from `noise`, one row per sample)."""
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    dy, dx = as_noise(noise).randint(2 * pad + 1, b, 2, device=images.device).T[:, :, None]  # (B, 1) each
    rows = (dy + torch.arange(h, device=images.device))[:, :, None]  # (B, h, 1)
    cols = (dx + torch.arange(w, device=images.device))[:, None, :]  # (B, 1, w)
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (B, C, h, w)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 → (T, size, size, 3) uint8, the same antialiased resize the encoder applies (the learner
    stores camera frames at the policy's size)."""
    if frames.shape[1:3] == (size, size):
        return frames
    x = torch.as_tensor(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convs) with GroupNorm."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(GROUPS, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(GROUPS, out_ch)
        self.shortcut = (nn.Identity() if stride == 1 and in_ch == out_ch else
                         nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.GroupNorm(GROUPS, out_ch)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + self.shortcut(x))


class ImageEncoder(nn.Module):
    """(B, 3, S, S) float in [0, 1] → (B, IMAGE_FEATURE_DIM)."""

    def __init__(self) -> None:
        super().__init__()
        width = IMAGE_WIDTHS[0]
        self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.GroupNorm(GROUPS, width), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, in_ch = [], IMAGE_WIDTHS[0]
        for i, out_ch in enumerate(IMAGE_WIDTHS):
            blocks.append(BasicBlock(in_ch, out_ch, stride=1 if i == 0 else 2))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(in_ch, IMAGE_FEATURE_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class ObservationEncoder(nn.Module):
    """Normalised state (passed through unchanged) ⊕ one ImageEncoder feature per camera, in `spec.cameras` order."""

    def __init__(self, spec: PolicySpec):
        super().__init__()
        self.cameras = list(spec.cameras)
        self.image_size = spec.image_size
        self.shift_pad = max(1, round(spec.image_size / 16))  # 6 px at 96×96, ≈ DP's 84/96 random crop
        self.image_encoders = nn.ModuleDict({camera: ImageEncoder() for camera in self.cameras})
        self.out_dim = spec.state_dim + IMAGE_FEATURE_DIM * len(self.cameras)

    def forward(self, state: torch.Tensor, images: dict[str, torch.Tensor] | None = None, augment: bool = False,
                noise: Noise | torch.Generator | None = None) -> torch.Tensor:
        """state (B, state_dim) normalised; images {camera: (B, 3, H, W) uint8} → (B, out_dim); with `augment`, each
        camera's frames randomly shifted (shifts drawn from `noise`)."""
        features = [state]
        for camera in self.cameras:
            if images is None or camera not in images:
                raise KeyError(f"observation lacks image for camera {camera!r} (policy cameras: {self.cameras})")
            x = images[camera].float() / 255.0
            if x.shape[-2:] != (self.image_size, self.image_size):
                x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                                  align_corners=False)
            if augment:
                x = random_shift(x, self.shift_pad, noise)
            features.append(self.image_encoders[camera](x))
        return torch.cat(features, dim=-1)
