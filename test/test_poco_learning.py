"""Short seeded runs showing the learning effect: POCO raises the success of a deliberately poor prior on an easy
task (robot_rl.sim.point_reach), while the BC-only baseline (same code, data and seeds) does not. The prior imitates
an expert whose every step is blurred by heavy noise, trained to convergence, so it is poor because its data are.
Everything but the env is the production code: flow policy, replay store, POCOLearner, online loop."""
import numpy as np
import pytest
import torch

from robot_rl.policies.base import PolicySpec
from robot_rl.policies.flow import FlowMatchingPolicy
from robot_rl.policies.normalizer import Normalizer
from robot_rl.rl.online import OnlineConfig, finetune
from robot_rl.rl.poco import POCOConfig, POCOLearner
from robot_rl.rl.pretrain import bc_on_episodes
from robot_rl.rl.replay import ReplayStore
from robot_rl.sim.point_reach import STEP, PointReach, noisy_expert_episodes

H = 5


def poor_prior(demos) -> FlowMatchingPolicy:
    torch.manual_seed(0)
    spec = PolicySpec(type="flow", action_names=["dx", "dy"], state_dim=4, horizon=H, execute_steps=H,
                      hidden_dim=64, depth=2, flow_steps=5)
    policy = FlowMatchingPolicy(spec, Normalizer.from_stats([-STEP] * 2, [STEP] * 2, [0.0] * 4, [0.5] * 4))
    return bc_on_episodes(policy, demos, steps=1500)


def run(mode: str, demos, env_steps: int = 3000, seed: int = 0) -> dict:
    """Online fine-tuning from the prior; success before any update and the mean of the last three evaluations."""
    # γ 0.9: over a 20-step task, a step saved is worth ~10 % of the value, which a small critic can rank by
    cfg = POCOConfig(mode=mode, num_candidates=32, batch_size=64, warmup_updates=200, clip=1.0, gamma=0.9,
                     critic_hidden=64, critic_depth=2, lr=1e-3)
    learner = POCOLearner(poor_prior(demos), cfg, seed=seed)
    store = ReplayStore(H, cfg.gamma)
    for episode in demos:
        store.add(episode)
    curve = finetune(PointReach(), learner, store, OnlineConfig(env_steps=env_steps, eval_every=500, eval_episodes=40,
                                                                seed=seed), to_env_action=lambda a: a)
    return {"before": curve.success[0], "after": float(np.mean(curve.success[-3:])), "metrics": curve.metrics[-1]}


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    demos = noisy_expert_episodes(20, noise=1.5, rng=np.random.default_rng(0))
    return {mode: run(mode, demos) for mode in ("poco", "bc")}


def test_poco_raises_the_success_of_a_poor_prior(runs):
    poco = runs["poco"]
    assert poco["before"] <= 0.7, f"the prior should be poor, it succeeds {poco['before']:.0%}"
    assert poco["after"] >= poco["before"] + 0.1, poco
    assert 0.0 < poco["metrics"]["q_clip_ratio"] < 1.0  # the clip is active but not everything is clipped


def test_bc_only_baseline_does_not_improve_as_much(runs):
    gain = {mode: r["after"] - r["before"] for mode, r in runs.items()}
    assert gain["poco"] > gain["bc"] and runs["poco"]["after"] > runs["bc"]["after"] + 0.05, runs
