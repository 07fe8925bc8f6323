"""The POCO learner split across 2 CPU processes (gloo, robot_rl.rl.distributed) takes the step one process takes on
the same batches: its actor, critic and target critic after a critic warm-up update and 5 POCO updates (2 BC-only, 3
with the clipped posterior term; BC anchored on expert chunks) equal a single POCOLearner's, and equal on both ranks.

The flow policy draws its noise inside (global RNG, generator) per position in its batch, so a shard draws other noise
than the whole batch. The processes and the reference therefore run it with noise that is a smooth function of each
sample (`keyed_noise`): every sample gets the same noise in any shard, and what is left is float reduction order."""
import os
import queue
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from robot_rl.policies.flow import FlowMatchingPolicy
from robot_rl.rl import distributed
from robot_rl.rl.poco import POCOConfig, POCOLearner
from robot_rl.rl.replay import Episode, ReplayStore
from policy_fixtures import tiny_sim_policy

CFG = POCOConfig(batch_size=32, num_candidates=4, warmup_updates=2, critic_hidden=32, critic_depth=2, lr=1e-3)
UPDATES = 5  # after one critic-only update: 2 BC-only (warm-up), then 3 with the posterior term
ATOL = 1e-5


def keyed_noise(key: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) values in [-1, 1] that depend only on each row's key."""
    return torch.sin(key[:, None] * torch.arange(1.0, width + 1) * 1.7 + 0.3)


def keyed_loss(self, obs, actions_normalized, cond=None):
    """FlowMatchingPolicy.loss with x_0 and τ from the sample instead of the RNG."""
    cond = self.encode(obs, augment=self.training) if cond is None else cond
    A = actions_normalized.flatten(1)
    key = cond.detach().sum(1) + A.detach().sum(1)
    x_0, tau = keyed_noise(key, A.shape[1]), 0.5 + 0.45 * torch.sin(3.1 * key)
    x_tau = (1 - tau[:, None]) * x_0 + tau[:, None] * A
    return (self.velocity(cond, x_tau, tau) - (A - x_0)).pow(2).mean(-1)


def keyed_rsample(self, obs, n=1, generator=None):
    """FlowMatchingPolicy.rsample_normalized with x_0 from the state and the candidate's index."""
    cond = self.encode(obs).repeat_interleave(n, dim=0)
    x = keyed_noise(cond.sum(1) + torch.arange(cond.shape[0]) % n, self.chunk_dim)
    dt = 1.0 / self.spec.flow_steps
    for k in range(self.spec.flow_steps):
        x = x + dt * self.velocity(cond, x, torch.full((cond.shape[0],), k * dt))
    return x.clamp(-1.0, 1.0).view(-1, n, self.spec.horizon, self.spec.action_dim)


def use_keyed_noise(patch) -> None:
    patch(FlowMatchingPolicy, "loss", keyed_loss)
    patch(FlowMatchingPolicy, "rsample_normalized", keyed_rsample)


def fixed_store(policy) -> ReplayStore:
    """Offline demonstrations and failed online episodes: the BC anchor sees experts and non-experts."""
    rng = np.random.default_rng(0)
    store = ReplayStore(policy.spec.horizon, CFG.gamma)
    S, D, T = policy.spec.state_dim, policy.spec.action_dim, 30
    for i in range(6):
        store.add(Episode(rng.normal(size=(T + 1, S)).astype(np.float32), rng.uniform(-1, 1, (T, D)).astype(np.float32),
                          rng.normal(size=T).astype(np.float32), bool(i % 2), source="offline" if i < 2 else "online",
                          success=None if i < 2 else False))
    return store


def train(learner: POCOLearner, store: ReplayStore) -> list[float]:
    """The same batches for every learner: one critic-only update, then UPDATES joint ones; the critic losses."""
    rng = np.random.default_rng(1)
    learner.pretrain_critic(lambda: store.sample(CFG.batch_size, rng), 1)
    return [learner.update(store.sample(CFG.batch_size, rng)).critic_loss for _ in range(UPDATES)]


def weights(learner: POCOLearner) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.clone() for name, module in (("actor", learner.policy), ("critic", learner.critic),
                                                          ("target", learner.critic_target))
            for k, v in module.state_dict().items()}


def rank_main(rank: int, port: int, sync: bool, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    use_keyed_noise(lambda owner, name, value: setattr(owner, name, value))
    if not sync:
        distributed.DistributedPOCO._sync_gradients = lambda self: None
    distributed.start(rank, 2)
    if rank == 0:
        learner = distributed.DistributedPOCO(tiny_sim_policy(0), CFG, seed=0)
        losses = train(learner, fixed_store(learner.policy))
        learner.close()
    else:
        learner, losses = distributed.follow(), None
    results.put((rank, {k: v.numpy() for k, v in weights(learner).items()}, losses))  # arrays: pickled by value
    dist.destroy_process_group()


def run_two_ranks(sync: bool) -> tuple[dict, dict, list[float]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.get_context("spawn").Queue()
    processes = mp.spawn(rank_main, args=(port, sync, results), nprocs=2, join=False)
    got = []
    while len(got) < 2:  # read before joining (a full pipe blocks the put), and raise a rank's error if it fails
        try:
            got.append(results.get(timeout=1.0))
        except queue.Empty:
            processes.join(timeout=0)
    processes.join()
    out = {rank: ({k: torch.from_numpy(v) for k, v in w.items()}, losses) for rank, w, losses in got}
    return out[0][0], out[1][0], out[0][1]


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def single_process():
    """The reference: one POCOLearner on the whole batches."""
    with pytest.MonkeyPatch.context() as mp_:
        use_keyed_noise(mp_.setattr)
        learner = POCOLearner(tiny_sim_policy(0), CFG, seed=0)
        start = weights(learner)
        losses = train(learner, fixed_store(learner.policy))
        return start, weights(learner), losses


@pytest.mark.timeout(180)
def test_two_processes_take_the_single_process_step(single_process):
    start, reference, reference_losses = single_process
    rank0, rank1, losses = run_two_ranks(sync=True)
    assert max_difference(start, reference) > 1e-3                  # the updates moved the weights
    assert max_difference(rank0, rank1) == 0.0                       # every rank holds the weights rank 0 publishes
    assert max_difference(rank0, reference) < ATOL
    assert losses == pytest.approx(reference_losses, rel=1e-4)       # metrics of the whole batch, not of a shard


@pytest.mark.timeout(180)
def test_without_the_gradient_sync_they_differ(single_process):
    _, reference, _ = single_process
    rank0, rank1, _ = run_two_ranks(sync=False)
    assert max_difference(rank0, reference) > 100 * ATOL
    assert max_difference(rank0, rank1) > 100 * ATOL
