"""The POCO learner split across 2 CPU processes (gloo, robot_rl.rl.distributed) takes the step one process takes on
the same batches: its actor, critic and target critic after a critic warm-up update and 5 updates (2 BC-only, 3 with
the clipped posterior term or the actor gradient; BC anchored on expert chunks) equal a single POCOLearner's, and
equal on both ranks.

The policies draw their own noise (flow x_0 and τ, diffusion ε and t, the samplers' x_0 / x_T, a camera policy's image
shifts) for every chunk of the batch they are called with. Every rank draws it for the whole batch and keeps its
shard's rows (policies/noise.py ShardNoise), so what is left between one process and two is float reduction order:
below 1e-5 in every weight of the MLP policies (flow), below 1e-3 of the distance the weights moved for the conv nets
(diffusion U-Net, image encoder; see CONV_CASES), where another noise draw ends ~1 of it away. One pair of processes
runs every case, one learner session after another."""
import os
import queue
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from robot_rl.policies import build_policy
from robot_rl.rl import distributed
from robot_rl.rl.poco import POCOConfig, POCOLearner
from robot_rl.rl.replay import Episode, ReplayStore
from policy_fixtures import tiny_sim_policy

CFG = POCOConfig(batch_size=32, num_candidates=4, warmup_updates=2, critic_hidden=32, critic_depth=2, lr=1e-3)
UPDATES = 5  # after one critic-only update: 2 BC-only (warm-up), then 3 with the posterior term (or actor gradient)
ATOL = 1e-5  # largest weight difference, for the MLP policies
RTOL = 1e-3  # ‖two processes − one‖ / ‖one − start‖ over all weights (another noise draw: ~1)
CASES = ["flow", "diffusion", "flow, camera", "flow, actor_gradient"]
CONV_CASES = {"diffusion", "flow, camera"}  # conv nets have weights whose gradient is ~0 but for rounding; Adam's first
#                                             steps make it a step of up to lr, so a few weights differ by up to ~1e-4


def case_learner(case: str, learner_class=POCOLearner) -> POCOLearner:
    """The case's learner, built alike in every process (seeded)."""
    policy = tiny_sim_policy(0, cameras=("front",) if "camera" in case else ())
    if case == "diffusion":
        torch.manual_seed(0)  # U-Net widths 16-32: at 8 (one channel per GroupNorm group) a conv bias has no gradient
        spec = policy.spec.model_copy(update=dict(type="diffusion", hidden_dim=32, diffusion_train_steps=10,
                                                  diffusion_infer_steps=3))  # but float noise, which Adam blows up
        policy = build_policy(spec, policy.normalizer)
    cfg = CFG.model_copy(update=dict(mode="actor_gradient")) if "actor_gradient" in case else CFG
    return learner_class(policy, cfg, seed=0)


def fixed_store(policy) -> ReplayStore:
    """Offline demonstrations and failed online episodes: the BC anchor sees experts and non-experts."""
    rng = np.random.default_rng(0)
    store = ReplayStore(policy.spec.horizon, CFG.gamma)
    S, D, T = policy.spec.state_dim, policy.spec.action_dim, 30
    for i in range(6):
        images = {c: rng.integers(0, 256, (T + 1, 16, 16, 3), dtype=np.uint8) for c in policy.spec.cameras}
        store.add(Episode(rng.normal(size=(T + 1, S)).astype(np.float32), rng.uniform(-1, 1, (T, D)).astype(np.float32),
                          rng.normal(size=T).astype(np.float32), bool(i % 2), source="offline" if i < 2 else "online",
                          images=images, success=None if i < 2 else False))
    return store


def train(learner: POCOLearner) -> list[float]:
    """The same batches for every learner: one critic-only update, then UPDATES joint ones; the critic losses."""
    store, rng = fixed_store(learner.policy), np.random.default_rng(1)
    learner.pretrain_critic(lambda: store.sample(CFG.batch_size, rng), 1)
    return [learner.update(store.sample(CFG.batch_size, rng)).critic_loss for _ in range(UPDATES)]


def weights(learner: POCOLearner) -> dict[str, torch.Tensor]:
    return {f"{name}.{k}": v.clone() for name, module in (("actor", learner.policy), ("critic", learner.critic),
                                                          ("target", learner.critic_target))
            for k, v in module.state_dict().items()}


def rank_main(rank: int, port: int, cases: list[str], sync: bool, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if not sync:
        distributed.DistributedPOCO._sync_gradients = lambda self: None
    distributed.start(rank, 2)
    for case in cases:  # one session per case
        if rank == 0:
            learner = case_learner(case, distributed.DistributedPOCO)
            losses = train(learner)
            learner.close()
        else:
            learner, losses = distributed.follow(), None
        results.put((case, rank, {k: v.numpy() for k, v in weights(learner).items()}, losses))  # pickled by value
    if rank == 0:
        distributed.release_followers()
    else:
        assert distributed.follow() is None
    dist.destroy_process_group()


def run_two_ranks(cases: list[str], sync: bool) -> dict[str, tuple[dict, dict, list[float]]]:
    """{case: (rank 0's weights, rank 1's, rank 0's critic losses)}."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.get_context("spawn").Queue()
    processes = mp.spawn(rank_main, args=(port, cases, sync, results), nprocs=2, join=False)
    got = {}
    while len(got) < 2 * len(cases):  # read before joining (a full pipe blocks the put); raise a rank's error
        try:
            case, rank, w, losses = results.get(timeout=1.0)
            got[case, rank] = ({k: torch.from_numpy(v) for k, v in w.items()}, losses)
        except queue.Empty:
            processes.join(timeout=0)
    processes.join()
    return {case: (got[case, 0][0], got[case, 1][0], got[case, 0][1]) for case in cases}


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def relative_difference(a: dict, b: dict, start: dict) -> float:
    """‖a − b‖ / ‖b − start‖, all weights as one vector: how far apart two runs end, per distance they moved."""
    def distance(x: dict, y: dict) -> float:
        return torch.cat([(x[k].float() - y[k].float()).reshape(-1) for k in x]).norm().item()

    return distance(a, b) / distance(b, start)


@pytest.fixture(scope="module")
def single_process() -> dict[str, tuple[dict, dict, list[float]]]:
    """The references: one POCOLearner per case on the whole batches; {case: (start, end weights, losses)}."""
    out = {}
    for case in CASES:
        learner = case_learner(case)
        start = weights(learner)
        losses = train(learner)
        out[case] = (start, weights(learner), losses)
    return out


@pytest.fixture(scope="module")
def two_processes() -> dict[str, tuple[dict, dict, list[float]]]:
    return run_two_ranks(CASES, sync=True)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", CASES)
def test_two_processes_take_the_single_process_step(case, single_process, two_processes):
    start, reference, reference_losses = single_process[case]
    rank0, rank1, losses = two_processes[case]
    assert max_difference(start, reference) > 1e-3                  # the updates moved the weights
    assert max_difference(rank0, rank1) == 0.0                       # every rank holds the weights rank 0 publishes
    assert relative_difference(rank0, reference, start) < RTOL      # the same update ...
    assert case in CONV_CASES or max_difference(rank0, reference) < ATOL  # ... in every weight
    assert losses == pytest.approx(reference_losses, rel=1e-4)       # metrics of the whole batch, not of a shard


@pytest.mark.timeout(180)
def test_without_the_gradient_sync_they_differ(single_process):
    _, reference, _ = single_process["flow"]
    rank0, rank1, _ = run_two_ranks(["flow"], sync=False)["flow"]
    assert max_difference(rank0, reference) > 100 * ATOL
    assert max_difference(rank0, rank1) > 100 * ATOL
