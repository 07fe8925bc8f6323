"""The point-reach learning experiment shared by test_poco_learning and bench/poco_learning: a flow-matching chunk
prior behaviour-cloned to convergence on a noisy expert (poor because its data are), then an online learner
(POCO or a baseline) with the demonstrations kept in its replay store."""
from __future__ import annotations

import numpy as np
import torch

from robot_rl.policies.base import PolicySpec
from robot_rl.policies.flow import FlowMatchingPolicy
from robot_rl.policies.normalizer import Normalizer
from robot_rl.rl.online import Curve, OnlineConfig, finetune
from robot_rl.rl.poco import POCOConfig, POCOLearner
from robot_rl.rl.pretrain import bc_on_episodes
from robot_rl.rl.replay import ReplayStore
from robot_rl.sim.point_reach import STEP, PointReach, noisy_expert_episodes

HORIZON = 5
DEMOS, DEMO_NOISE = 20, 1.5


def noisy_prior(demos, seed: int) -> FlowMatchingPolicy:
    torch.manual_seed(seed)
    spec = PolicySpec(type="flow", action_names=["dx", "dy"], state_dim=4, horizon=HORIZON, execute_steps=HORIZON,
                      hidden_dim=64, depth=2, flow_steps=5)
    policy = FlowMatchingPolicy(spec, Normalizer.from_stats([-STEP] * 2, [STEP] * 2, [0.0] * 4, [0.5] * 4))
    return bc_on_episodes(policy, demos, steps=1500, seed=seed)


def run(mode: str, seed: int = 0, env_steps: int = 3000, eval_every: int = 500) -> Curve:
    """One seeded run; the curve's first point is the prior, evaluated on 40 fixed episodes like every later one."""
    demos = noisy_expert_episodes(DEMOS, noise=DEMO_NOISE, rng=np.random.default_rng(seed))
    # γ 0.9: over a 20-step task a step saved is worth ~10 % of the value, which a small critic can rank by
    cfg = POCOConfig(mode=mode, num_candidates=32, batch_size=64, warmup_updates=200, clip=1.0, gamma=0.9,
                     critic_hidden=64, critic_depth=2, lr=1e-3)
    learner = POCOLearner(noisy_prior(demos, seed), cfg, seed=seed)
    store = ReplayStore(HORIZON, cfg.gamma)
    for episode in demos:
        store.add(episode)
    return finetune(PointReach(), learner, store, OnlineConfig(env_steps=env_steps, eval_every=eval_every,
                                                               eval_episodes=40, seed=seed))
