"""The learner's learning side without ROS: an episode's owed updates in published slices (a learner that trains while
the robot runs), the checkpoint and log row once they are all done, and a failure re-issuing the last good weights."""
import json

import numpy as np
import pytest
import torch

from robot_rl.policies import policy_from_bytes, save_policy
from robot_rl.rl.config import POCOConfig
from robot_rl.rl.assembler import EpisodeAssembler
from robot_rl.rl.replay import Episode, load_episodes
from robot_rl.rl.resumable import ResumableLearner, Work
from policy_fixtures import tiny_sim_policy

POCO = POCOConfig(batch_size=8, num_candidates=2, warmup_updates=0, critic_pretrain_updates=0, critic_hidden=16)


@pytest.fixture
def learner(tmp_path):
    policy = tiny_sim_policy(0)
    save_policy(policy, tmp_path / "prior", version=0)
    learner = ResumableLearner(tmp_path / "out", tmp_path / "prior", POCO)
    rng = np.random.default_rng(0)
    T, S, D = 20, policy.spec.state_dim, len(policy.spec.action_names)
    learner.store.add(Episode(rng.normal(size=(T + 1, S)).astype(np.float32),
                              rng.uniform(-1, 1, (T, D)).astype(np.float32), np.zeros(T, np.float32), False,
                              np.zeros(T, bool)))
    return learner


def test_an_episodes_updates_go_out_in_slices_and_only_the_last_saves_and_logs(learner):
    results = list(learner.run(Work(episode=3, outcome="timeout", steps=25, intervention_rate=0.0), publish_every=10))
    assert [r.version for r in results] == [1, 2, 3]                    # 10 + 10 + 5 updates
    assert [r.trained_through for r in results] == [None, None, 3]     # only the last holds all of episode 3
    assert [r.row is not None for r in results] == [False, False, True]
    assert learner.poco.updates == 25 and results[-1].row["steps"] == 25
    assert len({r.weights for r in results}) == 3                      # each slice published its own weights
    assert all(policy_from_bytes(r.weights)[1] == r.version for r in results)
    saved = json.loads((learner.state_dir / "learner_state.json").read_text())
    assert saved == {"trained_episodes": 1, "version": 3}


def test_without_slices_one_version_per_episode(learner):
    results = list(learner.run(Work(episode=0, outcome="success", steps=7, intervention_rate=0.0)))
    assert [(r.version, r.trained_through) for r in results] == [(1, 0)]


def test_a_failing_update_reissues_the_last_good_weights_and_counts_the_episode_as_done(learner, monkeypatch):
    good = list(learner.run(Work(episode=0, outcome="timeout", steps=4, intervention_rate=0.0), publish_every=2))
    monkeypatch.setattr(learner.poco, "update", lambda batch: (_ for _ in ()).throw(RuntimeError("boom")))
    results = list(learner.run(Work(episode=1, outcome="timeout", steps=4, intervention_rate=0.0), publish_every=2))
    assert len(results) == 1 and "boom" in results[0].error and results[0].trained_through == 1
    reissued, version = policy_from_bytes(results[0].weights)
    last_good, _ = policy_from_bytes(good[-1].weights)
    assert version == good[-1].version + 1                             # the last good weights, re-issued
    assert all(torch.equal(a, b) for a, b in zip(reissued.state_dict().values(), last_good.state_dict().values()))


def test_take_episode_stores_the_episode_and_accounts_for_every_executed_step(learner):
    dt, state_dim, action_dim = 1 / 15, learner.policy.spec.state_dim, len(learner.policy.spec.action_names)
    asm = EpisodeAssembler(dt)
    for i in range(11):
        asm.add_state(i * dt, np.zeros(state_dim, np.float32))
    for i in range(10):
        asm.add_action(i * dt, np.full(action_dim, 0.005, np.float32), is_intervention=False)  # the arm moving
        if i != 4:  # one reward record dropped
            asm.add_reward((i + 1) * dt, -0.01, False)
    work, accounting = learner.take_episode(asm, 0.0, episode=2, outcome="timeout", expected=11)
    assert work.steps == 10 and learner.online_episodes == 1
    assert (accounting["kept"], accounting["lost"], accounting["dropped"]) == (10, 1, {"not_received": 1})
    assert accounting["cause"] == "1 not_received, 1 kept without their reward record"
    stored = load_episodes(learner.replay_dir)[0]
    hold = learner.policy.normalizer.unnormalize_actions(torch.as_tensor(stored.hold_action))
    assert np.allclose(hold, [0.0] * 6 + [0.005], atol=1e-6)  # stored and persisted: past its end the arm holds
    refused = EpisodeAssembler(2 * dt)                       # the actions come at twice the learner's rate
    for i in range(10):
        refused.add_action(i * dt, np.zeros(action_dim, np.float32), is_intervention=False)
    work, accounting = learner.take_episode(refused, 0.0, episode=3, outcome="timeout", expected=10)
    assert work.steps == 0 and "not stored" in work.error
    assert accounting["dropped"] == {"refused_rate_mismatch": 10} and accounting["lost"] == 10


def test_the_update_to_data_ratio_sets_the_updates_an_episode_is_owed(learner):
    learner.poco.cfg = learner.poco.cfg.model_copy(update={"utd_ratio": 0.5})
    results = list(learner.run(Work(episode=0, outcome="timeout", steps=25, intervention_rate=0.0)))
    assert learner.poco.updates == 12 and results[-1].trained_through == 0   # round(0.5 * 25)
