"""Noise sources (robot_rl/policies/noise.py): the shards of a batch draw together exactly what the whole batch draws,
in the draws themselves and through the policies' losses, samplers and image augmentation."""
import pytest
import torch

from robot_rl.policies import Noise, PolicySpec, ShardNoise, build_policy

TOTAL = 10
SPLITS = [(0, 3), (3, 7), (7, 10)]


def generator() -> torch.Generator:
    return torch.Generator().manual_seed(5)


@pytest.mark.parametrize("per_state", [1, 4], ids=["k=1", "k=N"])
@pytest.mark.parametrize("draw", [lambda s, rows: s.randn(rows, 2, 3), lambda s, rows: s.rand(rows),
                                  lambda s, rows: s.randint(7, rows, 2)], ids=["randn", "rand", "randint"])
def test_shards_draw_the_whole_batch(draw, per_state):
    whole_noise = Noise(generator())
    shard_noises = [ShardNoise(generator(), lo, hi, TOTAL) for lo, hi in SPLITS]  # one generator per rank
    for _ in range(2):  # draws in a row: the shards' generators stay in step with the whole batch's
        whole = draw(whole_noise, TOTAL * per_state)
        assert torch.equal(torch.cat([draw(s, (s.hi - s.lo) * per_state) for s in shard_noises]), whole)


def test_a_draw_must_be_whole_rows_per_state():
    noise = ShardNoise(generator(), 3, 7, TOTAL)
    with pytest.raises(ValueError, match="4 states"):
        noise.randn(6, 2)
    with pytest.raises(ValueError, match="not a non-empty part"):
        ShardNoise(generator(), 5, 5, TOTAL)


@pytest.mark.parametrize("type_, cameras", [("flow", ()), ("diffusion", ()), ("flow", ("front",))],
                         ids=["flow", "diffusion", "flow-camera"])
def test_policies_on_shards_match_the_whole_batch(type_, cameras):
    torch.manual_seed(0)
    spec = PolicySpec(type=type_, action_names=["x", "y", "g"], state_dim=4, horizon=5, cameras=list(cameras),
                      image_size=16, hidden_dim=32, depth=2, flow_steps=3, diffusion_train_steps=10,
                      diffusion_infer_steps=3)
    policy = build_policy(spec).train()
    n = 3
    obs = {"state": torch.randn(TOTAL, 4)}
    if cameras:
        obs["images"] = {"front": torch.randint(0, 256, (TOTAL, 3, 16, 16), dtype=torch.uint8)}
    actions = torch.rand(TOTAL * n, 5, 3) * 2 - 1  # n candidates per state, adjacent

    def run(noise, lo: int, hi: int) -> tuple[torch.Tensor, ...]:
        """The E-step sample, the BC loss and the posterior loss (states encoded once, with augmentation) of rows
        [lo, hi)."""
        part = {"state": obs["state"][lo:hi]}
        if cameras:
            part["images"] = {"front": obs["images"]["front"][lo:hi]}
        with torch.no_grad():
            return (policy.sample_normalized(part, n, noise), policy.loss(part, actions[lo * n:hi * n:n], noise=noise),
                    policy.loss(None, actions[lo * n:hi * n], policy.encode(part, True, noise).repeat_interleave(n, 0),
                                noise))

    whole = run(Noise(generator()), 0, TOTAL)
    shards = [run(ShardNoise(generator(), lo, hi, TOTAL), lo, hi) for lo, hi in SPLITS]
    for i, expected in enumerate(whole):  # per-row computations: equal up to float reduction order
        torch.testing.assert_close(torch.cat([s[i] for s in shards]), expected, rtol=1e-5, atol=1e-6)
