"""Learner updates per second on 1 and 2 processes (robot_rl.rl.distributed, gloo on the CPU), side by side.

Two spawned processes: rank 0 runs, update by update in turn, a plain POCOLearner with one torch thread, the same with
two threads (the cores the 2-process learner uses; in the first `--thread-updates` rounds only, as it is slow on a
shared machine), and a DistributedPOCO that splits each batch across both ranks
(rank 1 waits on rank 0's next shard while the 1-process updates run). All start from the same demo-sized policy
(robot_rl.rl.distributed.demo_learner_setup, as bench/learner_rate.py) and take the same batch each round, so load from
other processes hits them alike. At the end the two ranks' weights are compared (0: every rank took the same step).

    python -m bench.learner_ddp [--updates 20] [--thread-updates 3] [--batch-sizes 128 512] [--no-write]
"""
from __future__ import annotations

import argparse
import copy
import os
import queue
import socket
import time

import numpy as np

from bench.report import machine_line, markdown_table, write_results, write_section

SINGLE, THREADS, PROCESSES = "1 process, 1 thread", "1 process, 2 threads", "2 processes (gloo), 1 thread each"


def rank_main(rank: int, port: int, args, results) -> None:
    import torch
    import torch.distributed as dist

    from robot_rl.rl import distributed
    from robot_rl.rl.poco import POCOLearner

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.start(rank, 2)
    for batch_size in args.batch_sizes:
        if rank == 1:
            results.put(("spread", batch_size, distributed.weight_spread(distributed.follow())))
            continue
        prior, cfg, store = distributed.demo_learner_setup(batch_size)
        learners = {SINGLE: POCOLearner(copy.deepcopy(prior), cfg), THREADS: POCOLearner(copy.deepcopy(prior), cfg),
                    PROCESSES: distributed.DistributedPOCO(copy.deepcopy(prior), cfg)}
        rng = np.random.default_rng(0)
        for i in range(args.warmup + args.updates):
            batch = store.sample(batch_size, rng)
            for name, learner in learners.items():
                if name == THREADS and i >= args.warmup + args.thread_updates:
                    continue
                torch.set_num_threads(2 if name == THREADS else 1)
                t0 = time.perf_counter()
                learner.update(batch)
                if i >= args.warmup:
                    results.put(("ms", batch_size, name, 1000 * (time.perf_counter() - t0)))
        torch.set_num_threads(1)
        learners[PROCESSES].close()
        distributed.weight_spread(learners[PROCESSES])
    if rank == 0:
        distributed.release_followers()
    else:
        distributed.follow()  # returns None: released
    dist.destroy_process_group()
    results.put(("done", rank))


def measure(args) -> tuple[dict, dict]:
    """{(batch size, method): [ms per update]} and {batch size: largest weight difference between the ranks}."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.get_context("spawn").Queue()
    processes = mp.spawn(rank_main, args=(port, args, results), nprocs=2, join=False)
    ms, spread, done = {}, {}, 0
    while done < 2:  # read while they run (a full pipe blocks the put); raise a rank's error if one fails
        try:
            item = results.get(timeout=1.0)
        except queue.Empty:
            processes.join(timeout=0)
            continue
        if item[0] == "ms":
            ms.setdefault(item[1:3], []).append(item[3])
        elif item[0] == "spread":
            spread[item[1]] = item[2]
        else:
            done += 1
    processes.join()
    return ms, spread


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=20, help="timed updates per method and batch size")
    parser.add_argument("--thread-updates", type=int, default=3, help="timed updates of the 2-thread learner")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    ms, spread = measure(args)
    rows, table = [], []
    for batch_size in args.batch_sizes:
        base = np.median(ms[(batch_size, SINGLE)])
        for name in (SINGLE, THREADS, PROCESSES):
            times = ms[(batch_size, name)]
            p50 = float(np.median(times))
            table.append([name, batch_size, len(times), f"{p50:.1f}", f"{np.percentile(times, 90):.1f}",
                          f"{1000 / p50:.2f}", f"{base / p50:.2f}×"])
            rows += [{"method": name, "seed": 0, "metric": "update_ms", "value": t, "batch_size": batch_size}
                     for t in times]
    text = (f"`POCOLearner.update` (demo configuration: flow policy hidden 128, depth 3, 10 flow steps, horizon 5; "
            f"N = 8 candidates; critic ensemble of 2 × 256 × 3; warm-up off) on 1 and 2 CPU processes. The 2-process "
            f"learner (`robot_rl/rl/distributed.py`) splits each batch into two shards, one per rank, and all-reduces "
            f"the gradients (gloo); rank 0 samples the batch and scatters the shards. The learners take turns "
            f"update by update on the same batches; the 2-thread one (intra-op threads on the same two cores) in the "
            f"first {args.thread_updates} rounds only.\n\n"
            + markdown_table(["learner", "batch", "n", "ms / update p50", "p90", "updates/s (p50)",
                              "speed-up vs 1 process"], table)
            + "\n\nLargest weight difference between the two ranks after the run: "
            + ", ".join(f"{spread[b]:.3g} (batch {b})" for b in args.batch_sizes)
            + f".\n\nCommand: `python -m bench.learner_ddp --updates {args.updates} --warmup {args.warmup} "
            f"--thread-updates {args.thread_updates} "
            f"--batch-sizes {' '.join(map(str, args.batch_sizes))}`. {machine_line()} 1-min load average before / "
            f"after: {load_before:.2f} / {os.getloadavg()[0]:.2f}.\n")
    print(text)
    if not args.no_write:
        write_results("learner_ddp", rows)
        write_section("learner_ddp", "## Learner updates/s on 1 and 2 processes (torch.distributed)\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
