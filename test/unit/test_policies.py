"""Generative chunk policies: shapes and ranges, per-sample losses, learning a toy task, safetensors checkpoints."""
import json
import pathlib
import pickle

import pytest
import torch

from robot_rl.policies import (CheckpointError, Normalizer, PolicySpec, build_policy, load_policy, policy_from_bytes,
                               policy_to_bytes, save_policy, sha256_hex)

TYPES = ["flow", "diffusion"]
ACTION_MIN = torch.tensor([-2.0, 0.0, 10.0])  # the last dimension is constant (zero range)
ACTION_MAX = torch.tensor([2.0, 1.0, 10.0])


def make_spec(type_: str, cameras: tuple[str, ...] = (), **overrides) -> PolicySpec:
    fields = dict(type=type_, action_names=["x", "y", "g"], state_dim=4, horizon=5, cameras=list(cameras),
                  image_size=32, hidden_dim=32, depth=2) | overrides
    return PolicySpec(**fields)


def make_policy(type_: str, cameras: tuple[str, ...] = (), seed: int = 0, **overrides):
    torch.manual_seed(seed)
    normalizer = Normalizer.from_stats(ACTION_MIN, ACTION_MAX, state_mean=[0.0, 1.0, 2.0, 3.0],
                                       state_std=[1.0, 2.0, 0.5, 0.0])
    return build_policy(make_spec(type_, cameras, **overrides), normalizer)


def make_obs(spec: PolicySpec, batch: int, seed: int = 0, image_hw: int = 48) -> dict:
    g = torch.Generator().manual_seed(seed)
    obs = {"state": torch.randn(batch, spec.state_dim, generator=g)}
    if spec.cameras:  # not at spec.image_size, so the encoder's resize runs too
        obs["images"] = {c: torch.randint(0, 256, (batch, 3, image_hw, image_hw), generator=g, dtype=torch.uint8)
                         for c in spec.cameras}
    return obs


# ---- normaliser ---------------------------------------------------------------------------------------------------
def test_normalizer_round_trip_and_guards():
    norm = Normalizer.from_stats(ACTION_MIN, ACTION_MAX, [0.0, 5.0], [2.0, 0.0])
    raw = torch.tensor([[-2.0, 0.25, 10.0], [1.0, 1.0, 10.0]])
    normalized = norm.normalize_actions(raw)
    torch.testing.assert_close(normalized, torch.tensor([[-1.0, -0.5, 0.0], [0.5, 1.0, 0.0]]))
    torch.testing.assert_close(norm.unnormalize_actions(normalized), raw)
    out_of_range = torch.tensor([[3.0, -7.0, 1.0]])  # clipped to [-1, 1] first; the constant dimension stays constant
    torch.testing.assert_close(norm.unnormalize_actions(out_of_range), torch.tensor([[2.0, 0.0, 10.0]]))
    state = torch.tensor([[2.0, 6.0]])
    torch.testing.assert_close(norm.normalize_state(state), torch.tensor([[1.0, 1.0]]))  # std 0 is treated as 1
    assert set(norm.state_dict()) == {"action_min", "action_max", "state_mean", "state_std"}


# ---- shapes, ranges, gradients ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cameras", [(), ("wrist", "front")], ids=["state", "images"])
@pytest.mark.parametrize("type_", TYPES)
def test_sample_shapes_ranges_loss_and_gradients(type_, cameras):
    policy = make_policy(type_, cameras)
    spec, B, n = policy.spec, 3, 4
    obs = make_obs(spec, B)

    normalized = policy.sample_normalized(obs, n, torch.Generator().manual_seed(0))
    assert normalized.shape == (B, n, spec.horizon, spec.action_dim)
    assert normalized.abs().max() <= 1.0 and not normalized.requires_grad
    assert not torch.allclose(normalized[:, 0], normalized[:, 1])  # the n candidates are distinct draws

    raw = policy.sample(obs, n, torch.Generator().manual_seed(0))
    torch.testing.assert_close(raw, policy.normalizer.unnormalize_actions(normalized))
    assert (raw >= ACTION_MIN).all() and (raw <= ACTION_MAX).all() and (raw[..., 2] == 10.0).all()

    policy.train()
    losses = policy.loss(obs, normalized[:, 0])
    assert losses.shape == (B,) and torch.isfinite(losses).all()
    losses.mean().backward()
    no_grad = [name for name, p in policy.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"no gradient reaches {no_grad}"


@pytest.mark.parametrize("type_", TYPES)
def test_sampling_is_reproducible_with_a_generator(type_):
    policy = make_policy(type_).eval()
    obs = make_obs(policy.spec, 2)
    a = policy.sample_normalized(obs, 8, torch.Generator().manual_seed(7))
    b = policy.sample_normalized(obs, 8, torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# ---- per-sample loss ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("type_", TYPES)
def test_loss_is_per_sample(type_):
    """Changing sample 1 of a batch changes loss[1] only, under the same noise seed (so no batch mean and no
    cross-sample normalisation — BatchNorm would fail this), and ∂loss[0]/∂A[1] = 0. Image config, train mode
    (augmentation on)."""
    policy = make_policy(type_, ("wrist", "front")).train()
    obs = make_obs(policy.spec, 3)
    actions = torch.rand(3, policy.spec.horizon, policy.spec.action_dim) * 2 - 1
    torch.manual_seed(123)
    before = policy.loss(obs, actions)

    changed_obs = {"state": obs["state"].clone(), "images": {c: im.clone() for c, im in obs["images"].items()}}
    changed_obs["state"][1] += 3.0
    changed_obs["images"]["front"][1] = 255 - changed_obs["images"]["front"][1]
    changed_actions = actions.clone().requires_grad_(True)
    with torch.no_grad():
        changed_actions[1] = -changed_actions[1]
    torch.manual_seed(123)
    after = policy.loss(changed_obs, changed_actions)

    torch.testing.assert_close(after[[0, 2]], before[[0, 2]])
    assert not torch.isclose(after[1], before[1])
    (grad,) = torch.autograd.grad(after[0], changed_actions)
    assert grad[0].abs().sum() > 0 and grad[1:].abs().sum() == 0


# ---- learning -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("type_", "steps", "hidden_dim", "max_ratio"),
                         [("flow", 500, 64, 0.15), ("diffusion", 400, 32, 0.3)])
def test_learns_a_state_to_chunk_map(type_, steps, hidden_dim, max_ratio):
    """Chunks that are a fixed linear function of a 2-D state: Adam on loss().mean() must cut the sample error."""
    torch.manual_seed(0)
    H, D = 5, 2
    W = torch.randn(H * D, 2)

    def chunk(s: torch.Tensor) -> torch.Tensor:
        return (s @ W.T).view(-1, H, D) * 0.5 + 1.0

    states = torch.rand(4096, 2) * 2 - 1
    actions = chunk(states)
    flat = actions.flatten(0, 1)
    normalizer = Normalizer.from_stats(flat.min(0).values, flat.max(0).values, states.mean(0), states.std(0))
    spec = PolicySpec(type=type_, action_names=["a", "b"], state_dim=2, horizon=H, hidden_dim=hidden_dim, depth=2)
    policy = build_policy(spec, normalizer)
    test_states = torch.rand(64, 2) * 2 - 1

    def sample_error() -> float:
        policy.eval()
        samples = policy.sample({"state": test_states}, 1, torch.Generator().manual_seed(1))[:, 0]
        return (samples - chunk(test_states)).abs().mean().item()

    untrained = sample_error()
    policy.train()
    targets = normalizer.normalize_actions(actions)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(states), (64,))
        loss = policy.loss({"state": states[idx]}, targets[idx]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trained = sample_error()
    assert trained < max_ratio * untrained, (untrained, trained)


# ---- checkpoints --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("type_", TYPES)
def test_save_load_round_trip(tmp_path, type_):
    policy = make_policy(type_, ("wrist", "front") if type_ == "diffusion" else ()).eval()
    obs = make_obs(policy.spec, 2)
    digest = save_policy(policy, tmp_path / "ckpt", version=7)

    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["version"] == 7 and config["sha256"] == digest
    assert digest == sha256_hex((tmp_path / "ckpt" / "policy.safetensors").read_bytes())

    loaded, version = load_policy(tmp_path / "ckpt")
    assert version == 7 and loaded.spec == policy.spec and not loaded.training
    expected = policy.sample(obs, 4, torch.Generator().manual_seed(3))  # raw units: the normaliser travelled too
    torch.testing.assert_close(loaded.sample(obs, 4, torch.Generator().manual_seed(3)), expected, rtol=0, atol=0)


@pytest.mark.parametrize("type_", TYPES)
def test_bytes_round_trip(type_):
    policy = make_policy(type_).eval()
    data = policy_to_bytes(policy, version=3)
    loaded, version = policy_from_bytes(data, expected_sha256=sha256_hex(data))
    assert version == 3
    for name, tensor in policy.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)


def test_corrupted_byte_is_refused_by_sha256(tmp_path):
    save_policy(make_policy("flow"), tmp_path, version=1)
    path = tmp_path / "policy.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        load_policy(tmp_path)
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        policy_from_bytes(bytes(data), expected_sha256=json.loads((tmp_path / "config.json").read_text())["sha256"])


def test_truncated_data_is_refused():
    data = policy_to_bytes(make_policy("flow"), version=1)
    with pytest.raises(CheckpointError, match="corrupt safetensors"):
        policy_from_bytes(data[:-100])  # header intact, tensor data short
    with pytest.raises(CheckpointError, match="truncated"):
        policy_from_bytes(data[:100])  # header cut
    with pytest.raises(CheckpointError, match="only 5 bytes"):
        policy_from_bytes(data[:5])


def test_wrong_tensor_shapes_or_names_are_refused():
    from safetensors.torch import load, save

    data = policy_to_bytes(make_policy("flow"), version=1)
    metadata = json.loads(data[8: 8 + int.from_bytes(data[:8], "little")])["__metadata__"]  # to forge files
    wider = make_policy("flow", hidden_dim=48).state_dict()
    with pytest.raises(CheckpointError, match=r"tensor '.*' is .* the policy needs"):
        policy_from_bytes(save(wider, metadata=metadata))
    deeper = make_policy("flow", depth=3).state_dict()
    with pytest.raises(CheckpointError, match="tensor names do not match"):
        policy_from_bytes(save(deeper, metadata=metadata))
    with pytest.raises(CheckpointError, match="unsupported checkpoint format version '99'"):
        policy_from_bytes(save(load(data), metadata=metadata | {"format_version": "99"}))
    with pytest.raises(CheckpointError, match="invalid policy spec"):
        policy_from_bytes(save(load(data), metadata=metadata | {"spec": '{"type": "flow"}'}))


def test_unknown_policy_type_in_config_is_refused(tmp_path):
    save_policy(make_policy("flow"), tmp_path, version=1)
    config = json.loads((tmp_path / "config.json").read_text())
    config["spec"]["type"] = "transformer"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"(?s)config.json.*type.*transformer"):
        load_policy(tmp_path)


class _TouchOnUnpickle:
    """Unpickling this creates a marker file: proof that a loader ran the pickle."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_pickle_files_are_refused_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    save_policy(make_policy("flow"), tmp_path / "ckpt", version=1)
    weights = tmp_path / "ckpt" / "policy.safetensors"
    torch.save({"weights": _TouchOnUnpickle(marker)}, weights)
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["sha256"] = sha256_hex(weights.read_bytes())  # a "consistent" but malicious checkpoint
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))

    with pytest.raises(CheckpointError, match="pickle"):
        load_policy(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="pickle"):
        policy_from_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    assert not marker.exists()
