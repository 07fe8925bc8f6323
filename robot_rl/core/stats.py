"""Intervals for learning claims, used by every bench and the demo: a success rate with its Wilson interval, a mean
over training seeds with a t interval, and a paired difference of two policies evaluated on the same episode seeds
with a bootstrap interval that resamples training seeds and episodes (numpy only)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z95 = 1.959964
# two-sided 95 % Student t quantiles for 1..30 degrees of freedom
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"

    def points(self) -> str:
        """As signed percentage points, for differences."""
        return f"{100 * self.mean:+.1f} [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"


def wilson(successes: int, n: int, z: float = Z95) -> Estimate:
    """A success rate with its Wilson score interval (sensible at 0 % and 100 %, unlike mean ± 2 SE)."""
    if n <= 0:
        raise ValueError("no episodes")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n)


def mean_interval(values, bounds: tuple[float, float] = (-np.inf, np.inf)) -> Estimate:
    """Mean over independent runs (training seeds) with a t interval, cut to `bounds` (a success rate: (0, 1));
    one run has no interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values")
    if x.size == 1:
        return Estimate(float(x[0]), float("nan"), float("nan"), 1)
    t = T95[x.size - 2] if x.size - 1 <= len(T95) else Z95
    half = t * x.std(ddof=1) / np.sqrt(x.size)
    return Estimate(float(x.mean()), float(max(bounds[0], x.mean() - half)), float(min(bounds[1], x.mean() + half)),
                    int(x.size))


def paired_difference(a, b, resamples: int = 10_000, seed: int = 0) -> Estimate:
    """Mean of a − b for outcomes on the same evaluation episodes, shaped (training seeds, episodes) (a 1-D array is
    one seed). The 95 % interval is a percentile bootstrap that resamples training seeds, then episodes within each,
    so it carries both the training and the evaluation noise."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same shape, got {a.shape} and {b.shape}")
    d = a - b
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, d.shape[0], size=(resamples, d.shape[0]))
    episodes = rng.integers(0, d.shape[1], size=(resamples, d.shape[0], d.shape[1]))
    boot = d[seeds[..., None], episodes].mean(axis=(1, 2))
    low, high = np.percentile(boot, [2.5, 97.5])
    return Estimate(float(d.mean()), float(low), float(high), int(d.size))


def roc_auc(positives, negatives) -> float:
    """Area under the ROC curve of a score separating positives from negatives: P(positive > negative), ties
    counted half (the Mann–Whitney statistic, from ranks)."""
    pos, neg = np.asarray(positives, dtype=float).ravel(), np.asarray(negatives, dtype=float).ravel()
    if not pos.size or not neg.size:
        raise ValueError("ROC AUC needs at least one positive and one negative score")
    _, inverse, counts = np.unique(np.concatenate([pos, neg]), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # average rank of each tie group
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
