"""Mish, x·tanh(softplus(x)), written with one exp: this torch wheel's CPU mish kernel (and its tanh) is 4-5× slower
forward and 2× slower forward + backward on the learner's batches, and the flow sampler's Mish layers were 43 % of a
POCO update. On small tensors (acting on one observation) its seven ops cost more in dispatch than they save, so those
keep torch's kernel.

With n = eˣ: tanh(softplus(x)) = tanh(ln(1 + n)) = m / (m + 2), m = n(n + 2); the derivative is
t + x·(1 − t²)·σ(x), σ(x) = n / (1 + n). Same values as torch.nn.Mish to float rounding (1e-6 in float32)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EXP_LIMIT = 20.0   # above it t = 1 in float32 and float64 alike: e^x would only overflow
SMALL = 8192       # elements; below it torch's kernel is faster (one observation: 128-wide layers)


def _tanh_softplus(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.exp(x.clamp(max=EXP_LIMIT))
    m = n * (n + 2.0)
    return m / (m + 2.0), n


class _MishFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        t, n = _tanh_softplus(x)
        ctx.save_for_backward(x, t, n)
        return x * t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, t, n = ctx.saved_tensors
        return grad * (t + x * (1.0 - t * t) * (n / (1.0 + n)))


def mish(x: torch.Tensor) -> torch.Tensor:
    if x.numel() < SMALL:
        return F.mish(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return _MishFunction.apply(x)
    return x * _tanh_softplus(x)[0]


class Mish(nn.Module):
    """Drop-in for torch.nn.Mish (no parameters: checkpoints are unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(x)
