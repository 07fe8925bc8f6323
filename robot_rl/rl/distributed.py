"""POCO's learner on several processes (torch.distributed): data-parallel over each batch, the same step on every rank.

Rank 0 is the learner the rest of the system talks to (the learner node, a bench): it alone holds the replay store,
samples every global batch as one process would, and scatters one shard of it to each rank; ranks > 0 are followers
(`follow`) that hold nothing but a copy of the learner, which they receive from rank 0 with the first batch. Each rank
computes POCO's losses on its shard as sums over the shard divided by the whole batch's count (the `_batch_mean` hook
of POCOLearner; the expert count of the BC anchor and actor_gradient's |Q| scale are all-reduced), so the all-reduced
SUM of the gradients is the whole batch's gradient, and the same Adam step on every rank keeps the weights identical:
the weights rank 0 publishes are every rank's. The gradients travel as one flat all-reduce after backward, not through
DistributedDataParallel: an update runs the policy forward several times (TD target sample, BC loss, E-step samples,
M-step loss) and the target critic without gradient, which DDP's one-forward-per-backward hooks do not fit.

Why a scattered batch rather than a replicated store: the learner node adds episodes from its ROS thread while its
worker samples, so replicas of the store would sample from different contents unless every addition were ordered
against every update; with one store and one sampler the global batch is exactly what one process would draw, and
followers need no replay data, dataset or ROS at all. The cost is one message per update (a state-only shard of 64
chunks is ~25 kB; camera shards carry their frames).

Noise: the flow and diffusion policies draw noise for every chunk they sample or train on (x_0 / x_T of the TD-target,
E-step and actor-gradient samples; x_0 and τ, or ε and t, of the losses; the image shifts of the BC loss). Each rank
draws every one of them for the whole batch and keeps its shard's rows (ShardNoise, robot_rl/policies/noise.py), from
the learner's update generator, which followers take over in rank 0's state with the first batch and which only
updates draw from (acting has its own), so it stays in step on every rank. The shards together thus use exactly the
noise one POCOLearner of rank 0's seed draws for the whole batch, and the update is the single-process one up to float
reduction order (test/unit/test_distributed_learner.py); the price is that every rank draws the others' noise too.
Update metrics are the whole batch's: the losses summed over the shards, the statistics averaged (q_std: the mean of
the shards' stds).

Launch (all ranks run the same command; torchrun or `accelerate launch` set RANK / WORLD_SIZE / MASTER_*):

    torchrun --nproc-per-node 2 -m robot_rl.rl.distributed check            # offline check: ranks agree, updates/s
    torchrun --nproc-per-node 2 -m robot_rl.rl.distributed run robot_rl.nodes.learner --ros-args --params-file ...

`run MODULE ARGS` runs MODULE as __main__ on rank 0 (the ROS node: ResumableLearner builds a DistributedPOCO when the
process group has more than one rank) and `follow` on the others, then releases them when rank 0 returns.
POCOLearner computes where its policy lives; the learner node loads its policy on the CPU, so the gradients use gloo.
On a CUDA host the group is "cpu:gloo,cuda:nccl", which sends CUDA gradients through NCCL for a learner on the GPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import os
import runpy
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from robot_rl.policies import ChunkPolicy, policy_from_bytes, policy_to_bytes
from robot_rl.policies.noise import ShardNoise
from robot_rl.rl.config import POCOConfig
from robot_rl.rl.poco import POCOLearner, UpdateMetrics
from robot_rl.rl.replay import ChunkBatch

FOLLOWER_IDLE = datetime.timedelta(days=7)  # followers wait for rank 0's next batch for as long as episodes take
LOSS_METRICS = ("critic_loss", "actor_loss", "bc_loss", "posterior_loss")  # each shard sends its part of the sum


@dataclass
class Setup:
    """What a follower builds its learner from: rank 0's learner as it stands before its first distributed update."""
    policy: bytes
    config: str
    critic: dict[str, torch.Tensor]
    noise_state: torch.Tensor  # the update generator's (POCOLearner.noise_generator)


@dataclass
class Shard:
    """One rank's part of one update: rows [start, start + len(batch)) of the global batch and that batch's size."""
    batch: ChunkBatch
    start: int
    total: int
    train_actor: bool
    setup: Setup | None = None  # with the first update of a session


class _Channel:
    """Rank 0 → followers, one message per update over its own gloo group (waits as long as the robot idles). None
    ends a session (the follower's `follow` returns) or, outside one, releases the followers. The lock keeps a worker
    thread's update and the shutdown's release from interleaving."""

    def __init__(self):
        self.group = None
        self.lock = threading.Lock()
        self.session_open = False
        self.released = False

    def send(self, messages: list) -> None:
        dist.scatter_object_list([None], messages, src=0, group=self.group)

    def receive(self):
        out = [None]
        dist.scatter_object_list(out, None, src=0, group=self.group)
        return out[0]


CHANNEL = _Channel()


def start(rank: int = -1, world_size: int = -1) -> None:
    """Join the process group: rank and world size as given, or (-1) from the environment like MASTER_ADDR / _PORT."""
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    CHANNEL.group = dist.new_group(backend="gloo", timeout=FOLLOWER_IDLE)


def split_batch(batch: ChunkBatch, parts: int) -> list[tuple[int, ChunkBatch]]:
    """Consecutive slices of a batch with their first rows, sizes differing by at most one (np.array_split)."""
    size = len(batch.returns)
    if size < parts:
        raise ValueError(f"a batch of {size} cannot be split across {parts} processes")
    bounds = np.linspace(0, size, parts + 1).round().astype(int)

    def part(value, a: int, b: int):
        return {k: v[a:b] for k, v in value.items()} if isinstance(value, dict) else value[a:b]

    return [(a, ChunkBatch(**{f.name: part(getattr(batch, f.name), a, b) for f in dataclasses.fields(ChunkBatch)}))
            for a, b in itertools.pairwise(bounds)]


class DistributedPOCO(POCOLearner):
    """POCOLearner whose updates are split across the ranks of the process group (see the module docstring). On rank
    0, `update(global batch)` as on a POCOLearner; on the others, `follow()` builds and drives one."""

    def __init__(self, policy: ChunkPolicy, cfg: POCOConfig, seed: int = 0):
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        super().__init__(policy, cfg, seed)  # followers: rank 0's update generator comes with the first batch
        self.lo = self.hi = self.total = 0  # this rank's rows [lo, hi) of the update in progress, of `total`
        self.started = self.closed = False  # rank 0: the followers hold this learner / were let go

    def update(self, batch: ChunkBatch, train_actor: bool = True) -> UpdateMetrics:
        if self.rank != 0:
            raise RuntimeError("ranks > 0 take their shards from rank 0: run follow() there")
        with CHANNEL.lock:
            if self.closed or CHANNEL.released:
                raise RuntimeError("the followers were released; this learner takes no more updates")
            if CHANNEL.session_open and not self.started:
                raise RuntimeError("the followers serve another learner of this process; close() it first")
            setup = None if self.started else self._setup()
            shards = [Shard(part, start, len(batch.returns), train_actor, setup)
                      for start, part in split_batch(batch, self.world_size)]
            CHANNEL.send(shards)
            CHANNEL.session_open = self.started = True
            return self.update_shard(shards[0])

    def close(self) -> None:
        """Rank 0: end the session; the followers' `follow` returns their learners."""
        with CHANNEL.lock:
            if self.started and not self.closed:
                CHANNEL.send([None] * self.world_size)
                CHANNEL.session_open = False
            self.closed = True

    def update_shard(self, shard: Shard) -> UpdateMetrics:
        """This rank's part of one update; every rank calls it for every update."""
        size = len(shard.batch.returns)
        self.lo, self.hi, self.total = shard.start, shard.start + size, shard.total
        metrics = super().update(shard.batch, shard.train_actor)
        values = torch.tensor([getattr(metrics, f.name) * (1 if f.name in LOSS_METRICS else size / self.total)
                               for f in dataclasses.fields(UpdateMetrics)], dtype=torch.float64)
        dist.all_reduce(values)
        return UpdateMetrics(*values.tolist())

    def _setup(self) -> Setup:
        return Setup(policy_to_bytes(self.acting_policy, 0), self.cfg.model_dump_json(), self.critic_tensors(),
                     self.noise_generator.get_state())

    # ---- POCOLearner's batch hooks, over the whole batch across the ranks ---------------------------------------
    def _noise(self) -> ShardNoise:
        """This shard's rows of the whole batch's noise (every rank draws all of it, from the same generator state)."""
        return ShardNoise(self.noise_generator, self.lo, self.hi, self.total)

    def _batch_mean(self, values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """This shard's part of the whole batch's (weighted) mean: the parts sum to it across the ranks."""
        if weights is None:
            return values.sum() / self.total
        count = weights.sum().detach().clone()
        dist.all_reduce(count)
        return (values * weights).sum() / count.clamp(min=1.0)

    def _batch_statistic(self, values: torch.Tensor) -> torch.Tensor:
        total = values.sum().detach().clone()
        dist.all_reduce(total)
        return total / self.total

    def _sync_gradients(self) -> None:
        """SUM the shards' gradients (one flat all-reduce); parameters without a gradient have none on every rank."""
        grads = [p.grad for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        for grad, summed in zip(grads, flat.split([g.numel() for g in grads])):
            grad.copy_(summed.view_as(grad))


def follow() -> DistributedPOCO | None:
    """Ranks > 0: one session — build the learner from rank 0's first message, run every update rank 0 sends, return
    the learner when rank 0 ends the session (None when rank 0 released the followers instead)."""
    shard = CHANNEL.receive()
    if shard is None:
        return None
    policy, _ = policy_from_bytes(shard.setup.policy)
    learner = DistributedPOCO(policy, POCOConfig.model_validate_json(shard.setup.config))
    learner.load_critic_tensors(shard.setup.critic)
    learner.noise_generator.set_state(shard.setup.noise_state)
    while shard is not None:
        learner.update_shard(shard)
        shard = CHANNEL.receive()
    return learner


def release_followers(wait_s: float = 60.0) -> None:
    """Rank 0, at exit: end any open session and release the followers (after an update in flight, up to `wait_s`)."""
    if not CHANNEL.lock.acquire(timeout=wait_s):
        return
    try:
        if CHANNEL.session_open:
            CHANNEL.send([None] * dist.get_world_size())
        CHANNEL.send([None] * dist.get_world_size())
        CHANNEL.session_open, CHANNEL.released = False, True
    finally:
        CHANNEL.lock.release()


def poco_learner(policy: ChunkPolicy, cfg: POCOConfig, seed: int = 0) -> POCOLearner:
    """The learner for this process: split across the ranks when it runs in a process group of several."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        return DistributedPOCO(policy, cfg, seed)
    return POCOLearner(policy, cfg, seed)


def weight_spread(learner: POCOLearner) -> float:
    """Collective: the largest |difference| of any actor, critic or target-critic weight from rank 0's."""
    flat = torch.cat([p.detach().reshape(-1) for m in (learner.policy, learner.critic, learner.critic_target)
                      for p in m.state_dict().values() if p.is_floating_point()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    spread = (flat - reference).abs().max()
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    return spread.item()


def demo_policy_spec():
    """The demo's policy (core.types.DEMO_POLICY) on the sim's state-only observation: EE-space actions, robot state
    + environment state (core.state). The learner benches time this shape."""
    from robot_rl.core.state import ENVIRONMENT_STATE_NAMES, STATE_NAMES
    from robot_rl.core.types import DEMO_POLICY, EE_SPACE_NAMES
    from robot_rl.policies import PolicySpec

    return PolicySpec(**DEMO_POLICY, action_names=list(EE_SPACE_NAMES),
                      state_dim=len(STATE_NAMES) + len(ENVIRONMENT_STATE_NAMES), environment_state=True)


def demo_learner_setup(batch_size: int, seed: int = 0, episodes: int = 20, **poco):
    """The demo's policy (demo_policy_spec, fresh weights from `seed`), a POCOConfig with warm-up off (and `poco`'s
    fields) and a ReplayStore of random episodes: what the learner benches and the distributed check time."""
    from robot_rl.policies import build_policy
    from robot_rl.rl.replay import random_store

    torch.manual_seed(seed)
    spec = demo_policy_spec()
    cfg = POCOConfig(batch_size=batch_size, warmup_updates=0, **poco)
    store = random_store(spec.horizon, cfg.gamma, spec.state_dim, spec.action_dim, episodes=episodes, steps=60,
                         seed=seed)
    return build_policy(spec), cfg, store


def check(updates: int, batch_size: int) -> int:
    """Every rank: `updates` updates of the demo's learner; rank 0 prints the rate and how far any rank's weights are
    from rank 0's (0 expected: every rank takes the same step). Returns the exit code."""
    if dist.get_rank() != 0:
        learner = follow()
    else:
        policy, cfg, store = demo_learner_setup(batch_size)
        learner = DistributedPOCO(policy, cfg)
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for _ in range(updates):
            learner.update(store.sample(batch_size, rng))
        elapsed = time.perf_counter() - t0
        learner.close()
    spread = weight_spread(learner)
    if dist.get_rank() == 0:
        print(f"{dist.get_world_size()} processes, {updates} updates at batch {batch_size}: "
              f"{updates / elapsed:.2f} updates/s; largest weight difference from rank 0: {spread:.3g}")
    return 0 if spread == 0.0 else 1


def run(module: str, argv: list[str]) -> int:
    """Rank 0 runs `module` as __main__ with `argv`; the other ranks follow its learner until it returns."""
    if dist.get_rank() != 0:
        while follow() is not None:
            pass
        return 0
    sys.argv = [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        release_followers()
    return code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check", help="the demo's learner on random replay data: ranks agree, updates/s")
    p_check.add_argument("--updates", type=int, default=20)
    p_check.add_argument("--batch-size", type=int, default=128)
    p_run = sub.add_parser("run", help="MODULE as __main__ on rank 0 (e.g. robot_rl.nodes.learner), followers elsewhere")
    p_run.add_argument("module")
    p_run.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start()
    try:
        return check(args.updates, args.batch_size) if args.command == "check" else run(args.module, args.args)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    # through the imported module: the learner the node builds must share its CHANNEL, not __main__'s copy
    from robot_rl.rl import distributed  # noqa: PLW0406

    raise SystemExit(distributed.main())
