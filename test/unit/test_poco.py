"""POCO's pieces: E-step weights, the clip, critic targets on a chain MDP, and the update wiring."""
import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES
from robot_rl.policies.base import PolicySpec
from robot_rl.policies.flow import FlowMatchingPolicy
from robot_rl.policies.normalizer import Normalizer
from robot_rl.rl.online import run_episode
from robot_rl.rl.poco import POCOConfig, POCOLearner, clipped_posterior_loss, posterior_weights
from robot_rl.rl.replay import (Episode, ReplayStore, intervention_segments, load_episodes, normalised_hold,
                                save_episode)


def test_weights_tend_to_argmax_as_temperature_goes_to_zero():
    q = torch.tensor([[0.10, 0.30, 0.25, -1.0], [2.0, 1.0, 1.9, 0.0]])
    sharp = posterior_weights(q, 1e-4)
    assert torch.allclose(sharp, torch.nn.functional.one_hot(q.argmax(1), 4).float(), atol=1e-6)
    soft = posterior_weights(q, 1e4)
    assert torch.allclose(soft, torch.full_like(q, 0.25), atol=1e-3)
    mid = posterior_weights(q, 0.1)
    assert torch.allclose(mid.sum(1), torch.ones(2)) and (mid[0, 1] > mid[0, 2] > mid[0, 0] > mid[0, 3])


def test_clip_gives_zero_gradient_above_zeta():
    losses = torch.tensor([[0.05, 0.20, 0.50, 0.10]], requires_grad=True)
    w = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    loss = clipped_posterior_loss(w, losses, clip=0.3)
    assert loss.item() == pytest.approx(0.1 * 0.05 + 0.2 * 0.2 + 0.3 * 0.3 + 0.4 * 0.1)
    loss.backward()
    assert losses.grad.tolist() == [[pytest.approx(0.1), pytest.approx(0.2), 0.0, pytest.approx(0.4)]]


def chain_episode(length=5):
    states = np.eye(length + 1, dtype=np.float32)  # one-hot position, s_0..s_T
    actions = np.zeros((length, 1), np.float32)
    rewards = np.zeros(length, np.float32)
    rewards[-1] = 1.0
    return Episode(states, actions, rewards, terminated=True, source="offline")


def tiny_policy(state_dim, action_dim=1, horizon=2):
    spec = PolicySpec(type="flow", action_names=[f"a{i}" for i in range(action_dim)], state_dim=state_dim,
                      horizon=horizon, execute_steps=horizon, hidden_dim=64, depth=2, flow_steps=5)
    return FlowMatchingPolicy(spec)


def test_critic_learns_discounted_returns_on_a_chain():
    torch.manual_seed(0)
    gamma, T = 0.9, 5
    store = ReplayStore(horizon=2, gamma=gamma)
    store.add(chain_episode(T))
    cfg = POCOConfig(mode="bc", gamma=gamma, batch_size=64, lr=1e-3, polyak=0.05, critic_hidden=64,
                     critic_depth=2, step_penalty=0.0)
    learner = POCOLearner(tiny_policy(T + 1), cfg, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(1500):
        learner.update(store.sample(64, rng))
    states = torch.eye(T + 1)[:T]
    with torch.no_grad():
        q = learner.critic(learner.policy.normalizer.normalize_state(states), torch.zeros(T, 2, 1)).mean(0)
    expected = torch.tensor([gamma ** (T - 1 - t) for t in range(T)])
    assert torch.allclose(q, expected, atol=0.05), (q, expected)


def test_replay_chunks_returns_and_bootstrap():
    store = ReplayStore(horizon=3, gamma=0.5)
    store.add(chain_episode(4))  # rewards 0, 0, 0, 1 ; terminal
    ep = store.episodes[0]
    chunks = store.chunks_at([0, 2])  # the second: steps 2, 3 and one past the end
    assert chunks.returns.tolist() == [0.0, pytest.approx(0.5 * 1.0)] and chunks.bootstrap.tolist() == [1.0, 0.0]
    assert np.array_equal(chunks.next_states, ep.states[[3, 4]]) and chunks.actions.shape == (2, 3, 1)
    assert np.array_equal(chunks.actions[1], ep.actions[[2, 3, 3]])  # the last action repeats past the end
    truncated = ReplayStore(3, 0.5)
    truncated.add(Episode(ep.states, ep.actions, ep.rewards, terminated=False))
    assert truncated.chunks_at([2]).bootstrap.tolist() == [1.0]  # a timeout is bootstrapped


def moving_episode(names, normalizer, length=4):
    """An episode whose every normalised action moves the arm (all 0.8), built as the learner builds them."""
    actions = np.full((length, len(names)), 0.8, np.float32)
    return Episode(np.zeros((length + 1, 3), np.float32), actions, np.ones(length, np.float32), terminated=True,
                   hold_action=normalised_hold(names, normalizer, actions[-1]))


def test_replay_pads_an_ee_delta_episode_with_the_holding_action_and_persists_it(tmp_path):
    """Past the end, EE deltas are zero (in raw units) with the gripper kept, as chunk_dataset pads demonstrations;
    joint targets (absolute) repeat the last action; the hold survives save/load."""
    ee = Normalizer.from_stats([-0.01] * 6 + [0.0], [0.03] * 6 + [0.08], [0.0] * 3, [1.0] * 3)  # raw 0 ↦ -0.5
    ep = moving_episode(EE_SPACE_NAMES, ee)
    store = ReplayStore(horizon=3, gamma=0.5)
    store.add(ep)
    chunk = store.chunks_at([2])  # steps 2, 3 and one past the end
    assert np.array_equal(chunk.actions[0, :2], ep.actions[2:4])
    raw_pad = ee.unnormalize_actions(torch.as_tensor(chunk.actions[0, 2])).numpy()
    last = ee.unnormalize_actions(torch.as_tensor(ep.actions[-1])).numpy()
    assert np.allclose(raw_pad[:6], 0.0, atol=1e-6) and raw_pad[6] == pytest.approx(last[6])  # held, gripper kept
    assert np.allclose(chunk.actions[0, 2], [-0.5] * 6 + [0.8])
    assert chunk.returns.tolist() == [pytest.approx(1.5)] and chunk.bootstrap.tolist() == [0.0]  # nothing past it
    joint = Normalizer.from_stats([-2.0] * 8, [2.0] * 8, [0.0] * 3, [1.0] * 3)
    absolute = ReplayStore(horizon=3, gamma=0.5)
    absolute.add(moving_episode(JOINT_SPACE_NAMES, joint))
    assert np.allclose(absolute.chunks_at([2]).actions[0], 0.8)  # joint targets: the last action repeats
    save_episode(ep, tmp_path, 0)
    loaded = load_episodes(tmp_path)[0]
    assert np.array_equal(loaded.hold_action, ep.hold_action)
    reloaded = ReplayStore(horizon=3, gamma=0.5)
    reloaded.add(loaded)
    assert np.array_equal(reloaded.chunks_at([2]).actions, chunk.actions)


def test_the_expert_anchor_is_demonstrations_interventions_and_successful_episodes():
    store = ReplayStore(horizon=2, gamma=0.9)
    demo = chain_episode(4)                                        # offline
    z = (np.zeros((5, 5), np.float32), np.zeros((4, 1), np.float32), np.zeros(4, np.float32))
    failed = Episode(*z, terminated=False, interventions=np.array([False, True, False, False]))
    succeeded = Episode(*z, terminated=True)
    for episode in (demo, failed, succeeded):
        store.add(episode)
    assert store.chunks_at(range(12)).expert.tolist() == [1.0] * 4 + [0.0, 1.0, 0.0, 0.0] + [1.0] * 4
    assert set(np.unique(store.sample(256, np.random.default_rng(0)).expert)) == {0.0, 1.0}


def test_expert_anchor_imitates_only_expert_chunks():
    """With bc_anchor expert, a batch of failed online chunks gives the BC term no gradient; with buffer it does."""
    torch.manual_seed(0)
    store = ReplayStore(horizon=2, gamma=0.9)
    store.add(Episode(np.random.default_rng(0).normal(size=(6, 6)).astype(np.float32), np.ones((5, 1), np.float32),
                      np.zeros(5, np.float32), terminated=False))
    batch = store.sample(16, np.random.default_rng(0))
    for anchor, moves in (("expert", False), ("buffer", True)):
        learner = POCOLearner(tiny_policy(6), POCOConfig(mode="bc", bc_anchor=anchor, batch_size=16), seed=0)
        before = [p.detach().clone() for p in learner.policy.parameters()]
        learner.update(batch)
        assert any(not torch.equal(a, b) for a, b in zip(before, learner.policy.parameters())) == moves, anchor


class FallsOff(gym.Env):
    """Terminates after three steps with a failure (the object left the workspace): nothing to bootstrap."""
    observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (2,), np.float32)})
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return {"state": np.zeros(2, np.float32)}, {}

    def step(self, action):
        self.t += 1
        return {"state": np.full(2, self.t / 10, np.float32)}, 0.0, self.t == 3, False, {"success": False}


def test_an_episode_ended_by_a_failure_is_terminal_not_a_time_out():
    learner = POCOLearner(tiny_policy(2), POCOConfig(mode="bc"), seed=0)
    episode, success = run_episode(FallsOff(), learner, seed=0, step_penalty=0.0)
    assert len(episode.actions) == 3 and episode.terminated and not success and not episode.succeeded
    store = ReplayStore(2, 0.9)
    store.add(episode)
    last = store.chunks_at([2])
    assert last.bootstrap.tolist() == [0.0] and last.expert.tolist() == [0.0]  # no bootstrap past the failure, no BC


def test_online_rollouts_and_intervention_stretches_of_ee_deltas_hold_after_their_end():
    spec = PolicySpec(type="flow", action_names=list(EE_SPACE_NAMES), state_dim=2, horizon=2, execute_steps=2,
                      hidden_dim=32, depth=2, flow_steps=3)
    learner = POCOLearner(FlowMatchingPolicy(spec), POCOConfig(mode="bc"), seed=0)  # identity normaliser: 0 ↦ 0
    episode, _ = run_episode(FallsOff(), learner, seed=0, step_penalty=0.0)
    assert np.array_equal(episode.hold_action, np.r_[np.zeros(6), episode.actions[-1, 6]])
    episode.interventions = np.array([True, False, True])
    first, last = intervention_segments(episode, spec.action_names, learner.policy.normalizer)
    assert np.array_equal(first.hold_action, np.r_[np.zeros(6), episode.actions[0, 6]])  # held after its own end
    assert np.array_equal(last.hold_action, episode.hold_action)


def test_offline_data_is_never_evicted():
    store = ReplayStore(horizon=1, gamma=0.9, capacity_steps=12)
    store.add(chain_episode(5))
    for _ in range(3):
        store.add(Episode(np.zeros((6, 6), np.float32), np.zeros((5, 1), np.float32), np.zeros(5, np.float32), False))
    assert len(store) <= 12 and store.episodes[0].source == "offline"


def test_poco_update_logs_clip_ratio_weights_and_moves_the_actor():
    torch.manual_seed(0)
    store = ReplayStore(horizon=2, gamma=0.9)
    store.add(chain_episode(5))
    learner = POCOLearner(tiny_policy(6), POCOConfig(num_candidates=8, batch_size=16, warmup_updates=1), seed=0)
    rng = np.random.default_rng(0)
    warm = learner.update(store.sample(16, rng))
    assert np.isnan(warm.q_clip_ratio)  # warm-up: BC only
    before = [p.detach().clone() for p in learner.policy.parameters()]
    m = learner.update(store.sample(16, rng))
    assert 0.0 <= m.q_clip_ratio <= 1.0 and 1.0 <= m.weight_ess <= 8.0 and 0.125 <= m.weight_max <= 1.0
    assert np.isfinite([m.critic_loss, m.actor_loss, m.posterior_loss]).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, learner.policy.parameters()))


def test_best_of_n_acts_with_the_highest_q_candidate():
    torch.manual_seed(0)
    learner = POCOLearner(tiny_policy(3), POCOConfig(mode="best_of_n", num_candidates=16), seed=0)
    obs = {"state": torch.zeros(2, 3)}
    chosen = learner.act(obs)
    assert chosen.shape == (2, 2, 1)
    features = learner._features(obs)
    q_chosen = learner._target_q(features, chosen)
    others = learner.policy.sample_normalized(obs, 16)
    q_others = learner._target_q(features.repeat_interleave(16, 0), others.flatten(0, 1)).view(2, 16)
    assert (q_chosen >= q_others.median(1).values).all()


class SumCritic(torch.nn.Module):
    """Q(s, A) = Σ A: prefers chunks at +1 everywhere (one ensemble member)."""

    def forward(self, features, chunk):
        return chunk.flatten(1).sum(1)[None]


def test_actor_gradient_baseline_moves_samples_up_the_critic():
    torch.manual_seed(0)
    learner = POCOLearner(tiny_policy(4), POCOConfig(mode="actor_gradient", bc_weight=0.0, lr=3e-3,
                                                     warmup_updates=0, batch_size=32), seed=0)
    learner.critic = learner.critic_target = SumCritic()
    store = ReplayStore(horizon=2, gamma=0.9)
    store.add(chain_episode(3))
    obs = {"state": torch.eye(4)}
    before = learner.policy.sample_normalized(obs, 16, torch.Generator().manual_seed(1)).mean().item()
    rng = np.random.default_rng(0)
    for _ in range(40):
        learner.update(store.sample(32, rng))
    after = learner.policy.sample_normalized(obs, 16, torch.Generator().manual_seed(1)).mean().item()
    assert after > before + 0.3, (before, after)


def test_actor_gradient_term_does_not_train_the_critic():
    store = ReplayStore(horizon=2, gamma=0.9)
    store.add(chain_episode(3))
    batch = store.sample(16, np.random.default_rng(0))
    critics = []
    for mode in ("bc", "actor_gradient"):
        torch.manual_seed(0)
        learner = POCOLearner(tiny_policy(4), POCOConfig(mode=mode, warmup_updates=0, lr=1e-2), seed=0)
        learner.update(batch)
        critics.append([p.detach().clone() for p in learner.critic.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*critics))


def test_critic_state_round_trip_and_size_mismatch_is_refused():
    a = POCOLearner(tiny_policy(3), POCOConfig(), seed=0)
    a.updates = 17
    b = POCOLearner(tiny_policy(3), POCOConfig(), seed=1)
    b.load_critic_tensors(a.critic_tensors())
    assert b.updates == 17
    assert all(torch.equal(x, y) for x, y in zip(a.critic.parameters(), b.critic.parameters()))
    wider = POCOLearner(tiny_policy(3), POCOConfig(critic_hidden=64), seed=0)
    with pytest.raises(ValueError, match="critic state does not fit"):
        wider.load_critic_tensors(a.critic_tensors())


def test_the_acting_policy_is_a_polyak_average_of_the_trained_one_and_survives_a_restart():
    """τ_π < 1: the policy that acts (and is published) trails the trained actor by π̄ ← (1 − τ_π)π̄ + τ_π·π_θ,
    moves only with actor updates, and a learner rebuilt from the saved acting policy and learner state resumes both."""
    torch.manual_seed(0)
    store = ReplayStore(horizon=2, gamma=0.9)
    store.add(chain_episode(5))
    cfg = POCOConfig(acting_polyak=0.1, batch_size=16, num_candidates=4, warmup_updates=0, lr=1e-2)
    learner = POCOLearner(tiny_policy(6), cfg, seed=0)
    rng = np.random.default_rng(0)
    start = [p.detach().clone() for p in learner.policy.parameters()]
    learner.update(store.sample(16, rng), train_actor=False)  # critic warm-up: the acting policy stays
    assert all(torch.equal(a, p) for a, p in zip(start, learner.acting_policy.parameters()))
    expected = [p.clone() for p in start]
    for _ in range(5):
        learner.update(store.sample(16, rng))
        expected = [e.lerp(p.detach(), 0.1) for e, p in zip(expected, learner.policy.parameters())]
    for e, a, p in zip(expected, learner.acting_policy.parameters(), learner.policy.parameters()):
        assert torch.allclose(a, e, atol=1e-6) and not torch.equal(a, p)
    obs = {"state": torch.eye(6)[:2]}
    learner.generator.manual_seed(3)
    acted = learner.act(obs)
    assert torch.equal(acted, learner.acting_policy.sample_normalized(obs, 1, torch.Generator().manual_seed(3))[:, 0])

    restarted = POCOLearner(copy.deepcopy(learner.acting_policy), cfg, seed=0)  # as load_policy(checkpoint) gives it
    restarted.load_critic_tensors(learner.critic_tensors())
    for module in ("policy", "acting_policy", "critic"):
        assert all(torch.equal(a, b) for a, b in zip(getattr(learner, module).parameters(),
                                                     getattr(restarted, module).parameters())), module
    plain = POCOLearner(tiny_policy(6), POCOConfig(acting_polyak=1.0), seed=0)
    assert plain.acting_policy is plain.policy and not any(k.startswith("trained_actor.")
                                                           for k in plain.critic_tensors())


def image_episode(length, cameras=("front",), size=16, seed=0):
    """An episode whose frame t is filled with the value t, so a sampled image names the step it came from."""
    ep = chain_episode(length)
    frames = np.broadcast_to(np.arange(length + 1, dtype=np.uint8)[:, None, None, None], (length + 1, size, size, 3))
    return Episode(ep.states, ep.actions, ep.rewards, True, source="offline",
                   images={cam: frames.copy() for cam in cameras})


def test_replay_images_travel_with_their_states_and_persist(tmp_path):
    store = ReplayStore(horizon=2, gamma=0.9)
    store.add(image_episode(6))
    batch = store.sample(32, np.random.default_rng(0))
    step = batch.states.argmax(1)  # the one-hot state says which step was sampled
    assert (batch.images["front"][:, 0, 0, 0] == step).all()
    assert (batch.next_images["front"][:, 0, 0, 0] == batch.next_states.argmax(1)).all()
    save_episode(store.episodes[0], tmp_path, 0)
    loaded = load_episodes(tmp_path)[0]
    assert np.array_equal(loaded.images["front"], store.episodes[0].images["front"])


def test_replay_refuses_episodes_of_another_schema():
    store = ReplayStore(horizon=2, gamma=0.9)
    store.add(image_episode(4))
    with pytest.raises(ValueError, match="schema"):
        store.add(chain_episode(4))  # no images
    with pytest.raises(ValueError, match="schema"):
        store.add(image_episode(4, cameras=("wrist",)))
    with pytest.raises(ValueError, match="uint8"):
        Episode(np.zeros((3, 2), np.float32), np.zeros((2, 1), np.float32), np.zeros(2, np.float32), False,
                images={"front": np.zeros((3, 8, 8, 3), np.float32)})


def test_poco_updates_an_image_policy_without_training_its_encoder_through_the_critic():
    torch.manual_seed(0)
    spec = PolicySpec(type="flow", action_names=["a0"], state_dim=6, horizon=2, execute_steps=2, hidden_dim=32,
                      depth=2, flow_steps=3, cameras=["front"], image_size=16)
    learner = POCOLearner(FlowMatchingPolicy(spec), POCOConfig(num_candidates=4, batch_size=8, warmup_updates=0,
                                                               bc_weight=0.0, beta=0.0), seed=0)
    store = ReplayStore(horizon=2, gamma=0.9)
    store.add(image_episode(5))
    encoder = [p.detach().clone() for p in learner.policy.encoder.parameters()]
    critic = [p.detach().clone() for p in learner.critic.parameters()]
    m = learner.update(store.sample(8, np.random.default_rng(0)))  # β = c_bc = 0: only the critic's loss acts
    assert np.isfinite([m.critic_loss, m.q_clip_ratio, m.weight_ess]).all()
    assert all(torch.equal(a, b) for a, b in zip(encoder, learner.policy.encoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(critic, learner.critic.parameters()))


def test_intervention_stretches_become_demonstrations():
    ep = chain_episode(6)  # terminal success at the last step
    ep.interventions = np.array([0, 1, 1, 0, 1, 1], bool)
    first, last = intervention_segments(ep)
    assert np.array_equal(first.states, ep.states[1:4]) and np.array_equal(first.actions, ep.actions[1:3])
    assert not first.terminated and first.source == "offline" and first.interventions.all()
    assert np.array_equal(last.rewards, ep.rewards[4:6]) and last.terminated  # it ended the episode
    assert intervention_segments(chain_episode(3)) == []
