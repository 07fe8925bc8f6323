"""POCO's learner update on a GPU against the CPU: the same update (the demo's flow policy and critic, POCO with N
candidates, warm-up off) on the same batch, at growing batch sizes, for a learner on a GPU host (HIL-SERL style: the
robot PC runs control, the learner runs where the accelerator is).

Every device runs `POCOLearner.update` on one fixed ChunkBatch from a ReplayStore of random episodes
(bench.learner_rate), from the same initial weights; the policy and critic live on the device and each batch is copied
there per update, as the learner node's would be. Every update ends in `.item()` reads of its metrics, so a GPU update
is timed to its end.

    python -m bench.learner_device [--devices cpu cuda] [--batch-sizes 128 512 2048] [--candidates 16] [--updates 30]

On a machine without a GPU it measures nothing and leaves its table as it is (make bench runs it everywhere).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from bench.report import machine_line, markdown_table, write_results, write_section


def updates_per_s(device: str, batch_size: int, candidates: int, warmup: int, updates: int) -> float:
    from robot_rl.rl.distributed import demo_learner_setup
    from robot_rl.rl.poco import POCOLearner

    policy, cfg, store = demo_learner_setup(batch_size, episodes=40, num_candidates=candidates)
    learner = POCOLearner(policy.to(device), cfg, seed=0)
    batch = store.sample(batch_size, np.random.default_rng(0))
    for _ in range(warmup):
        learner.update(batch)
    start = time.perf_counter()
    for _ in tqdm(range(updates), desc=f"POCO updates on {device}, batch {batch_size}", unit="update"):
        learner.update(batch)
    return updates / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu and cuda where there is a GPU")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--updates", type=int, default=30, help="timed updates per device and batch size")
    parser.add_argument("--warmup", type=int, default=5, help="untimed updates first (CUDA kernels load)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ as it is")
    args = parser.parse_args(argv)

    import torch

    if args.devices is None and not torch.cuda.is_available():
        print("bench.learner_device: no CUDA device here, nothing to compare (its table stays as measured); "
              "--devices cpu times the CPU alone")
        return 0
    args.devices = args.devices or ["cpu", "cuda"]
    if "cuda" in args.devices and not torch.cuda.is_available():
        parser.error("no CUDA device here: pass --devices cpu")
    names = {"cpu": f"CPU ({torch.get_num_threads()} torch threads)",
             "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else "cuda"}
    rate = {(d, b): updates_per_s(d, b, args.candidates, args.warmup, args.updates)
            for b in args.batch_sizes for d in args.devices}
    rows = [{"method": device, "seed": 0, "batch_size": b, "metric": "updates_per_s", "value": rate[device, b]}
            for device, b in rate]
    header = ["batch"] + [f"{names[d]} updates/s" for d in args.devices]
    lines = [[b] + [f"{rate[d, b]:.1f}" for d in args.devices] for b in args.batch_sizes]
    if set(args.devices) >= {"cpu", "cuda"}:
        header.append("GPU / CPU")
        for line, b in zip(lines, args.batch_sizes):
            line.append(f"{rate['cuda', b] / rate['cpu', b]:.1f}×")
    text = ("## Learner update on a GPU against the CPU\n\n"
            f"`python -m bench.learner_device --batch-sizes {' '.join(map(str, args.batch_sizes))} --candidates "
            f"{args.candidates} --updates {args.updates}` ({machine_line()} torch {torch.__version__}). "
            f"`POCOLearner.update`, POCO with N = {args.candidates} candidates, warm-up off, the demo's flow policy "
            "(hidden 128, 10 flow steps, horizon 5) and critic (2 × 256 × 3), on one fixed batch copied to the device "
            f"every update; {args.warmup} untimed updates first.\n\n" + markdown_table(header, lines) + "\n")
    print(text)
    if not args.no_write:
        write_results("learner_device", rows)
        write_section("learner_device", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
