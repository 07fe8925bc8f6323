"""The point-reach experiment (bench/poco_learning): a 2-D point-reaching gymnasium env with a
noisy scripted expert, a flow-matching chunk prior behaviour-cloned to convergence on that expert's demonstrations (poor
because its data are), then an online learner (POCO or a baseline) with the demonstrations kept in its replay store.
Everything but the env is the production code. No MuJoCo: one step is an addition, so thousands of learner updates fit
in a CI run.

State (x, y, goal_x, goal_y); action Δ ∈ [-0.1, 0.1]²; reward 1 and termination within 0.1 of the goal; 20 steps.
"""
from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from robot_rl.core.yaml_config import apply_sets
from robot_rl.policies.base import PolicySpec
from robot_rl.policies.flow import FlowMatchingPolicy
from robot_rl.policies.normalizer import Normalizer
from robot_rl.rl.online import Curve, OnlineConfig, finetune
from robot_rl.rl.config import POCOConfig
from robot_rl.rl.poco import POCOLearner
from robot_rl.rl.pretrain import bc_on_episodes
from robot_rl.rl.replay import Episode, ReplayStore

STEP, TOLERANCE, MAX_STEPS = 0.1, 0.1, 20


class PointReach(gym.Env):
    observation_space = spaces.Dict({"state": spaces.Box(-2, 2, (4,), np.float32)})
    action_space = spaces.Box(-STEP, STEP, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        rng = np.random.default_rng(seed)
        self.pos, self.goal, self.t = np.zeros(2), rng.uniform(-0.8, 0.8, 2), 0
        return {"state": self._state()}, {}

    def _state(self) -> np.ndarray:
        return np.r_[self.pos, self.goal].astype(np.float32)

    def step(self, action):
        self.pos = self.pos + np.clip(action, -STEP, STEP)
        self.t += 1
        success = bool(np.linalg.norm(self.pos - self.goal) < TOLERANCE)
        truncated = self.t >= MAX_STEPS and not success
        return {"state": self._state()}, float(success), success, truncated, {"success": success}


def noisy_expert_episodes(n: int, noise: float, rng: np.random.Generator, step_penalty: float = -0.01) -> list[Episode]:
    """Episodes (seeds 0..n-1) of an expert that heads for the goal at full speed, each step blurred by Gaussian noise
    of `noise` × the step limit; actions stored normalised to [-1, 1] (divided by STEP), rewards with the penalty."""
    env, episodes = PointReach(), []
    for i in range(n):
        obs, _ = env.reset(seed=i)
        states, actions, rewards, done, terminated = [obs["state"]], [], [], False, False
        while not done:
            action = np.clip(np.clip(env.goal - env.pos, -STEP, STEP) + rng.normal(0, noise * STEP, 2), -STEP, STEP)
            obs, reward, terminated, truncated, _ = env.step(action)
            states.append(obs["state"])
            actions.append(action / STEP)
            rewards.append(reward + step_penalty)
            done = terminated or truncated
        episodes.append(Episode(np.asarray(states), np.asarray(actions, np.float32), np.asarray(rewards, np.float32),
                                terminated, source="offline"))
    return episodes


HORIZON = 5
DEMOS, DEMO_NOISE = 20, 1.5


def noisy_prior(demos, seed: int) -> FlowMatchingPolicy:
    torch.manual_seed(seed)
    spec = PolicySpec(type="flow", action_names=["dx", "dy"], state_dim=4, horizon=HORIZON, execute_steps=HORIZON,
                      hidden_dim=64, depth=2, flow_steps=5)
    policy = FlowMatchingPolicy(spec, Normalizer.from_stats([-STEP] * 2, [STEP] * 2, [0.0] * 4, [0.5] * 4))
    return bc_on_episodes(policy, demos, steps=1500, seed=seed)


# the toy's scale: a small critic, short horizon (γ 0.9: over a 20-step task a step saved is worth ~10 % of the value,
# which a small critic can rank by), small batches; everything else is POCOConfig's defaults
TOY = {"batch_size": 64, "gamma": 0.9, "critic_hidden": 64, "critic_depth": 2, "lr": 1e-3}


def run(mode: str, seed: int = 0, env_steps: int = 3000, eval_every: int = 500, eval_episodes: int = 100,
        sets: list[str] = ()) -> Curve:
    """One seeded run; the curve's first point is the prior (after the critic's warm-up), evaluated on the same
    `eval_episodes` episodes as every later one. `sets`: poco.KEY=VALUE over the toy's settings."""
    return run_modes([mode], seed, env_steps, eval_every, eval_episodes, sets)[mode]


def run_modes(modes: list[str], seed: int = 0, env_steps: int = 3000, eval_every: int = 500, eval_episodes: int = 100,
              sets: list[str] = ()) -> dict[str, Curve]:
    """`run` for several modes from one prior, trained once: each mode starts from a copy of it with torch's global
    generator where the prior left it, so each curve is the one `run(mode, seed)` makes."""
    demos = noisy_expert_episodes(DEMOS, noise=DEMO_NOISE, rng=np.random.default_rng(seed))
    prior = noisy_prior(demos, seed)
    after_prior = torch.get_rng_state()
    curves = {}
    for mode in modes:
        torch.set_rng_state(after_prior)
        cfg = POCOConfig.model_validate(apply_sets({"poco": {**TOY, "mode": mode}}, list(sets))["poco"])
        learner = POCOLearner(copy.deepcopy(prior), cfg, seed=seed)
        store = ReplayStore(HORIZON, cfg.gamma)
        for episode in demos:
            store.add(episode)
        curves[mode] = finetune(PointReach(), learner, store, OnlineConfig(
            env_steps=env_steps, eval_every=eval_every, eval_episodes=eval_episodes, seed=seed))
    return curves
