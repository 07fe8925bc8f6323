"""A 2-D point-reaching gymnasium env with a noisy scripted expert: the easy task on which short seeded runs show
whether an online learner improves a poor prior (test_poco_learning, bench/poco_learning). No MuJoCo: one step is an
addition, so thousands of learner updates fit in a CI run.

State (x, y, goal_x, goal_y); action Δ ∈ [-0.1, 0.1]²; reward 1 and termination within 0.1 of the goal; 20 steps.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robot_rl.rl.replay import Episode

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
