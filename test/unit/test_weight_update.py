"""The policy node's weight handshake without ROS: a version record and the weight bytes in either order, checked by
sha256 and against the running policy, swapped only between episodes; a refusal keeps the old weights running."""
import pytest

from robot_rl.core.types import JOINT_SPACE_NAMES
from robot_rl.policies import policy_to_bytes, save_policy, sha256_hex
from robot_rl.policies.learned import LearnedBackend
from robot_rl.policies.weight_update import ActiveWeights, WeightUpdate
from policy_fixtures import tiny_sim_policy

SMALL = {"environment_state": False, "hidden_dim": 16, "depth": 1, "flow_steps": 2}


@pytest.fixture
def update(tmp_path):
    prior = tiny_sim_policy(0, **SMALL)
    digest = save_policy(prior, tmp_path / "prior", version=0)
    handshake = WeightUpdate(LearnedBackend(prior, 0), tmp_path / "prior")
    assert handshake.active() == ActiveWeights(0, digest)
    return handshake


@pytest.mark.parametrize("record_first", [True, False])
def test_weights_swap_in_whichever_order_record_and_bytes_arrive(update, record_first):
    blob = policy_to_bytes(tiny_sim_policy(1, **SMALL), version=1)
    steps = [lambda: update.on_version(1, sha256_hex(blob)), lambda: update.on_weights(blob)]
    first, second = steps if record_first else steps[::-1]
    assert first() is None  # half of the pair: nothing to do yet
    assert second() == ActiveWeights(1, sha256_hex(blob))
    assert update.backend.version == 1


def test_bytes_without_their_record_are_never_loaded(update):
    blob = policy_to_bytes(tiny_sim_policy(1, **SMALL), version=1)
    assert update.on_version(1, "0" * 64) is None  # the record announces other bytes
    assert update.on_weights(blob) is None
    assert update.backend.version == 0 and update.staged is None


def test_a_digest_announced_for_another_version_is_refused_and_the_old_weights_kept(update):
    blob = policy_to_bytes(tiny_sim_policy(1, **SMALL), version=1)
    update.on_version(1, "0" * 64)
    update.on_version(2, sha256_hex(blob))  # the bytes say version 1, whose record names another sha256
    refusal = update.on_weights(blob)
    assert refusal.version == 0 and "another sha256" in refusal.message, refusal
    assert refusal.message.startswith("refused new weights") and update.backend.version == 0


def test_corrupt_bytes_or_another_action_space_are_refused(update):
    corrupt = bytearray(policy_to_bytes(tiny_sim_policy(1, **SMALL), version=1))
    corrupt[len(corrupt) // 2] ^= 0xFF
    update.on_version(1, sha256_hex(bytes(corrupt[:-100])))
    assert update.on_weights(bytes(corrupt[:-100])).message.startswith("refused new weights")
    other = policy_to_bytes(tiny_sim_policy(2, action_names=JOINT_SPACE_NAMES, **SMALL), version=2)
    update.on_version(2, sha256_hex(other))
    assert "weights act on" in update.on_weights(other).message
    assert update.backend.version == 0


def test_no_swap_mid_episode(update):
    assert update.episode_started() is None
    blob = policy_to_bytes(tiny_sim_policy(1, **SMALL), version=1)
    update.on_version(1, sha256_hex(blob))
    assert update.on_weights(blob) is None  # staged
    assert update.backend.version == 0
    assert update.episode_ended() == ActiveWeights(1, sha256_hex(blob))
    assert update.backend.version == 1 and update.episode_ended() is None


def test_weights_with_a_critic_make_the_backend_pick_the_best_of_n_under_it(update):
    """best_of_n through the graph: the learner's weights carry its critic, and the backend then executes the one of
    N candidates the critic values most (recomputed here from the same generator), not a single sample."""
    import numpy as np
    import torch

    from robot_rl.core.observation import Observation
    from robot_rl.core.state import EE_POSE_STREAM, JOINT_STATES_STREAM, state_from_streams
    from robot_rl.policies import BestOfN, ChunkCritic, selector_from_bytes

    policy = tiny_sim_policy(1, **SMALL)
    spec = policy.spec
    torch.manual_seed(0)
    critic = ChunkCritic(policy.encoder.out_dim, spec.horizon * spec.action_dim, hidden=8, depth=1, ensemble=2)
    blob = policy_to_bytes(policy, version=1, selector=BestOfN(critic, 16))
    assert selector_from_bytes(policy_to_bytes(policy, 1), policy) is None   # plain weights: one sample per chunk
    update.on_version(1, sha256_hex(blob))
    assert update.on_weights(blob) == ActiveWeights(1, sha256_hex(blob))
    backend = update.backend
    assert backend.selector.num_candidates == 16

    obs = Observation(0.0, {JOINT_STATES_STREAM: np.zeros(8),
                            EE_POSE_STREAM: (np.array([0.4, 0.0, 0.3]), np.array([1.0, 0.0, 0.0, 0.0]))})
    backend.reset(episode=3)
    chosen = backend.act(obs)
    generator = torch.Generator().manual_seed(backend.seed * 100_003 + 3)   # as backend.reset seeds it
    batch = {"state": torch.as_tensor(state_from_streams(obs.values))[None]}
    with torch.no_grad():
        candidates = policy.sample_normalized(batch, 16, generator)[0]      # (N, H, D)
        q = critic(policy.encode(batch).repeat(16, 1), candidates).mean(0)
    best = policy.normalizer.unnormalize_actions(candidates[q.argmax()])
    first = policy.normalizer.unnormalize_actions(candidates[0])
    assert np.allclose(chosen, best[: spec.execute_steps].numpy(), atol=1e-5)
    assert q.argmax() != 0 and not np.allclose(chosen, first[: spec.execute_steps].numpy())
