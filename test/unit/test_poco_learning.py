"""Short seeded runs showing the learning effect: POCO raises the success of a deliberately poor prior on an easy
task (bench/point_reach.py), while the BC-only baseline (same code, data and seeds) does not. Everything but the
env is the production code: flow policy, replay store, POCOLearner, online loop (bench/point_reach.py).
"""
import numpy as np
import pytest
import torch

from bench.point_reach import run


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    results = {}
    for mode in ("poco", "bc"):
        curve = run(mode, seed=0)
        # success of the prior, and the mean of the last three evaluations (120 episodes)
        results[mode] = {"before": curve.success[0], "after": float(np.mean(curve.success[-3:])),
                         "metrics": curve.metrics[-1]}
    return results


def test_poco_raises_the_success_of_a_poor_prior(runs):
    poco = runs["poco"]
    assert poco["before"] <= 0.7, f"the prior should be poor, it succeeds {poco['before']:.0%}"
    assert poco["after"] >= poco["before"] + 0.1, poco
    assert 0.0 < poco["metrics"]["q_clip_ratio"] < 1.0  # the clip is active but not everything is clipped


def test_bc_only_baseline_does_not_improve_as_much(runs):
    gain = {mode: r["after"] - r["before"] for mode, r in runs.items()}
    assert gain["poco"] > gain["bc"] and runs["poco"]["after"] > runs["bc"]["after"] + 0.05, runs
