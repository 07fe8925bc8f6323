"""Where a policy's random draws come from: x_0 and τ (flow), ε and t (diffusion), x_0 / x_T (sampling), image shifts.

Every draw has one row per chunk (or per state) of the batch the policy is called with, in the first dimension. POCO's
learner split across processes (robot_rl.rl.distributed) calls the policy on one shard of each batch, and for its
update to be the single-process one a shard must draw exactly the rows the whole batch would draw for it: ShardNoise
draws every time for the whole batch, from a generator in the same state on every rank, and keeps its own rows.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import torch


class Noise:
    """Random draws of `rows` rows from a generator (the global RNG if None), made where the generator lives and moved
    to `device`."""

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def randn(self, rows: int, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Standard normal, (rows, *shape)."""
        return self._draw(torch.randn, rows, shape, device)

    def rand(self, rows: int, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Uniform on [0, 1), (rows, *shape)."""
        return self._draw(torch.rand, rows, shape, device)

    def randint(self, high: int, rows: int, *shape: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Uniform integers in [0, high), (rows, *shape)."""
        return self._draw(functools.partial(torch.randint, 0, high), rows, shape, device)

    def _draw(self, sample: Callable, rows: int, shape: tuple[int, ...], device: torch.device | str) -> torch.Tensor:
        where = device if self.generator is None else self.generator.device
        return self._rows(rows, lambda n: sample((n, *shape), generator=self.generator, device=where)).to(device)

    def _rows(self, rows: int, draw: Callable[[int], torch.Tensor]) -> torch.Tensor:
        return draw(rows)


class ShardNoise(Noise):
    """The draws of rows [lo, hi) of a `total`-row batch. A call for `rows` rows on the shard's hi − lo states is
    k = rows / (hi − lo) rows per state (a state's N candidates are adjacent, as repeat_interleave lays them out): it
    draws total·k rows, what Noise draws for the whole batch, and returns rows [lo·k, hi·k). So the shards together
    draw the whole batch's noise, and generators in the same state on every rank stay in the same state."""

    def __init__(self, generator: torch.Generator | None, lo: int, hi: int, total: int):
        if not 0 <= lo < hi <= total:
            raise ValueError(f"shard rows [{lo}, {hi}) are not a non-empty part of a batch of {total}")
        super().__init__(generator)
        self.lo, self.hi, self.total = lo, hi, total

    def _rows(self, rows: int, draw: Callable[[int], torch.Tensor]) -> torch.Tensor:
        k, rest = divmod(rows, self.hi - self.lo)
        if rest:
            raise ValueError(f"a draw of {rows} rows is not a whole number of rows for each of the shard's "
                             f"{self.hi - self.lo} states")
        return draw(self.total * k)[self.lo * k: self.hi * k]


def as_noise(noise: Noise | torch.Generator | None) -> Noise:
    """A policy's noise argument as a Noise: callers that act pass a generator (or None), the learner a Noise."""
    return noise if isinstance(noise, Noise) else Noise(noise)
