"""Short seeded runs showing the learning effect: POCO raises the success of a deliberately poor prior on an easy
task, while the BC-only baseline (same code, same data, same seeds) does not. The task is a 2-D point that must reach
a goal within 0.1 in 20 steps; the prior imitates an expert whose every step is blurred by heavy noise, so its own
chunks are noisy too. Everything else is the production code: flow policy, replay store, POCOLearner, online loop."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from robot_rl.policies.base import PolicySpec
from robot_rl.policies.flow import FlowMatchingPolicy
from robot_rl.policies.normalizer import Normalizer
from robot_rl.rl.online import OnlineConfig, finetune
from robot_rl.rl.poco import POCOConfig, POCOLearner
from robot_rl.rl.replay import Episode, ReplayStore

STEP, TOLERANCE, MAX_STEPS, H = 0.1, 0.1, 20, 5


class PointReach(gym.Env):
    """State (x, y, goal_x, goal_y); action Δ ∈ [-0.1, 0.1]²; reward 1 and termination within 0.1 of the goal."""

    observation_space = spaces.Dict({"state": spaces.Box(-2, 2, (4,), np.float32)})
    action_space = spaces.Box(-STEP, STEP, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        rng = np.random.default_rng(seed)
        self.pos, self.goal, self.t = np.zeros(2), rng.uniform(-0.8, 0.8, 2), 0
        return {"state": self._state()}, {}

    def _state(self):
        return np.r_[self.pos, self.goal].astype(np.float32)

    def step(self, action):
        self.pos = self.pos + np.clip(action, -STEP, STEP)
        self.t += 1
        success = bool(np.linalg.norm(self.pos - self.goal) < TOLERANCE)
        return {"state": self._state()}, float(success), success, self.t >= MAX_STEPS and not success, {
            "success": success}


def noisy_expert_demos(n: int, noise: float, rng: np.random.Generator) -> list[Episode]:
    env, episodes = PointReach(), []
    for i in range(n):
        obs, _ = env.reset(seed=i)
        states, actions, rewards, done = [obs["state"]], [], [], False
        while not done:
            direction = env.goal - env.pos
            action = np.clip(direction, -STEP, STEP) + rng.normal(0, noise * STEP, 2)
            action = np.clip(action, -STEP, STEP)
            obs, r, terminated, truncated, _ = env.step(action)
            states.append(obs["state"])
            actions.append(action / STEP)  # normalised: the normaliser below is [-0.1, 0.1] -> [-1, 1]
            rewards.append(r - 0.01)
            done = terminated or truncated
        episodes.append(Episode(np.asarray(states), np.asarray(actions, np.float32), np.asarray(rewards, np.float32),
                                terminated, source="offline"))
    return episodes


def poor_prior(demos: list[Episode]) -> FlowMatchingPolicy:
    torch.manual_seed(0)
    spec = PolicySpec(type="flow", action_names=["dx", "dy"], state_dim=4, horizon=H, execute_steps=H,
                      hidden_dim=64, depth=2, flow_steps=5)
    policy = FlowMatchingPolicy(spec, Normalizer.from_stats([-STEP] * 2, [STEP] * 2, [0.0] * 4, [0.5] * 4))
    store = ReplayStore(H, 0.99)
    for ep in demos:
        store.add(ep)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for _ in range(1500):  # BC to convergence: the prior is poor because its data are, not for lack of training
        batch = store.sample(128, rng)
        loss = policy.loss({"state": torch.as_tensor(batch.states)}, torch.as_tensor(batch.actions)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy.eval()


@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    demos = noisy_expert_demos(20, noise=1.5, rng=np.random.default_rng(0))
    results = {}
    for mode in ("poco", "bc"):
        policy = poor_prior(demos)
        # γ 0.9: over a 20-step task, a step saved is worth ~10 % of the value, which a small critic can rank by
        learner = POCOLearner(policy, POCOConfig(mode=mode, num_candidates=32, batch_size=64, warmup_updates=200,
                                                 clip=1.0, gamma=0.9, critic_hidden=64, critic_depth=2, lr=1e-3),
                              seed=0)
        store = ReplayStore(H, learner.cfg.gamma)
        for ep in demos:
            store.add(ep)
        env = PointReach()
        curve = finetune(env, learner, store, OnlineConfig(env_steps=3000, eval_every=500, eval_episodes=40),
                         to_env_action=lambda a: a)
        # success before any update, and the mean of the last three evaluations (1000 env steps, 120 episodes)
        results[mode] = (curve.success[0], float(np.mean(curve.success[-3:])), curve.metrics[-1])
    return results


def test_poco_raises_the_success_of_a_poor_prior(runs):
    before, after, metrics = runs["poco"]
    assert before <= 0.5, f"the prior should be poor, it succeeds {before:.0%}"
    assert after >= before + 0.1, (before, after, metrics)
    assert 0.0 < metrics["q_clip_ratio"] < 1.0  # the clip is active but not everything is clipped


def test_bc_only_baseline_does_not_improve_as_much(runs):
    poco_gain = runs["poco"][1] - runs["poco"][0]
    bc_gain = runs["bc"][1] - runs["bc"][0]
    assert poco_gain > bc_gain + 0.1, runs
