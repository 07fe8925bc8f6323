"""The soft actor-critic learner (robot_rl/rl/sac.py): the squashed Gaussian's log-density, the state scaling taken
from the random steps, n-step targets that stop at a terminal state, and learning a 1-D reach from scratch."""
import numpy as np
import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

from robot_rl.rl.sac import SACAgent, SACConfig


def test_log_prob_is_the_tanh_squashed_gaussian_density():
    agent = SACAgent(4, 2, SACConfig(hidden=16, seed_steps=0))
    obs = torch.randn(64, 4)
    with torch.no_grad():
        a, log_prob = agent._sample(obs)
        mu, log_std = agent._gaussian(obs)
        reference = TransformedDistribution(Normal(mu, log_std.exp()), [TanhTransform()])
        expected = reference.log_prob(a.clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    torch.testing.assert_close(log_prob, expected, atol=2e-3, rtol=1e-3)


def test_n_step_returns_stop_at_a_terminal_state_and_bootstrap_at_a_time_limit():
    cfg = SACConfig(hidden=16, n_step=3, gamma=0.5, batch_size=4)
    agent = SACAgent(1, 1, cfg)
    obs, actions, rewards = np.arange(5, dtype=np.float32)[:, None], np.zeros((4, 1)), np.ones(4, np.float32)
    agent.replay.add_episode(obs, actions, rewards, terminal=True)
    agent.replay.add_episode(obs, actions, rewards, terminal=False)
    r = agent.replay
    assert r.returns[:4] == pytest.approx([1.75, 1.75, 1.5, 1.0])       # 1 + γ + γ², cut at the episode's end
    assert r.discounts[:4] == pytest.approx([0.125, 0.0, 0.0, 0.0])     # terminal: no bootstrap from its end
    assert r.discounts[4:8] == pytest.approx([0.125, 0.125, 0.25, 0.5])  # time limit: bootstrap from the last state
    assert r.next_obs[:4, 0] == pytest.approx([3, 4, 4, 4])


def test_states_are_scaled_by_the_statistics_of_the_random_steps():
    agent = SACAgent(2, 1, SACConfig(hidden=16, batch_size=8))
    rng = np.random.default_rng(0)
    obs = np.c_[0.30 + 0.01 * rng.standard_normal(51), 5.0 + 2.0 * rng.standard_normal(51)].astype(np.float32)
    agent.replay.add_episode(obs, np.zeros((50, 1)), np.zeros(50, np.float32), terminal=False)
    agent.update()
    scaled = agent.scale(torch.as_tensor(obs[:50]))
    assert scaled.mean(0) == pytest.approx([0.0, 0.0], abs=0.05) and scaled.std(0) == pytest.approx([1, 1], abs=0.05)


def test_learns_a_one_dimensional_reach_from_scratch():
    """x ← x + 0.1·a from 0 to the goal 0.6 (success within 0.05 ends the episode with 1), level reward
    0.1·(1 − γ)·(1 − |x − goal|): the learned mean action reaches the goal; random actions almost never do."""
    goal, gamma, horizon = 0.6, 0.95, 30
    cfg = SACConfig(hidden=64, batch_size=64, gamma=gamma, seed_steps=300, update_every=1, lr=1e-3)
    agent = SACAgent(1, 1, cfg, seed=0)

    def episode(act):
        x, states, actions, rewards = 0.0, [[0.0]], [], []
        for _ in range(horizon):
            a = act(np.array([x], np.float32))
            x = float(np.clip(x + 0.1 * a[0], -1, 1))
            success = abs(x - goal) < 0.05
            states.append([x])
            actions.append(a)
            rewards.append(float(success) + 0.1 * (1 - gamma) * (1 - abs(x - goal)))
            if success:
                break
        return np.asarray(states, np.float32), np.asarray(actions), np.asarray(rewards, np.float32), success

    steps = 0
    while steps < 2500:
        states, actions, rewards, success = episode(lambda s: agent.act(s, steps))
        agent.replay.add_episode(states, actions, rewards, terminal=success)
        for _ in range(len(actions) if steps + len(actions) > cfg.seed_steps else 0):
            agent.update()
        steps += len(actions)
    rng = np.random.default_rng(1)
    learned = [episode(lambda s: agent.act(s, steps, std=0.1))[3] for _ in range(10)]
    random = [episode(lambda s: rng.uniform(-1, 1, 1))[3] for _ in range(10)]
    assert sum(learned) >= 9 and sum(learned) > sum(random) + 5, (learned, random)
