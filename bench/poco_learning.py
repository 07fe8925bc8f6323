"""POCO against its baselines on the point-reach task (bench/point_reach.py), same prior, data, seeds and code:
POCO, BC only, best-of-N with the critic (Q-chunking style) and the actor-gradient baseline through the flow.

    python -m bench.poco_learning [--seeds 0 1] [--env-steps 3000]

Prints a table, writes the `poco_learning` section of docs/benchmarks.md and docs/poco_learning.png.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tqdm import tqdm

from bench.report import ROOT, machine_line, markdown_table, write_section
from bench.point_reach import run

MODES = ("poco", "bc", "best_of_n", "actor_gradient")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    curves, rows = {}, []
    for mode in tqdm(MODES, desc="modes"):
        start = time.monotonic()
        results = [run(mode, seed, args.env_steps, args.eval_every) for seed in args.seeds]
        steps = results[0].env_steps
        success = np.array([r.success for r in results])  # (seeds, evaluations)
        curves[mode] = (steps, success.mean(0))
        final = success[:, -3:].mean(1)  # last three evaluations per seed
        clip = np.nanmean([r.metrics[-1].get("q_clip_ratio", np.nan) for r in results]) if mode == "poco" else np.nan
        worst_dip = (success.min(1) - success[:, 0]).min()  # deepest fall below the prior, any seed, any evaluation
        rows.append([mode, f"{success[:, 0].mean():.2f}", f"{final.mean():.2f} ± {final.std():.2f}",
                     f"{final.mean() - success[:, 0].mean():+.2f}", f"{worst_dip:+.2f}",
                     f"{clip:.2f}" if mode == "poco" else "",
                     f"{(time.monotonic() - start) / len(args.seeds):.0f}"])
    headers = ["learner", "prior success", "final success (mean of last 3 evals, ± std over seeds)", "change",
               "worst dip below the prior", "q_clip_ratio", "s / run"]
    table = markdown_table(headers, rows)
    print(table)
    if args.no_write:
        return 0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for mode, (steps, mean) in curves.items():
        ax.plot(steps, mean, marker="o", label=mode)
    ax.set(xlabel="env steps", ylabel="success (40 eval episodes, mean over seeds)", title="point reach, noisy prior")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "poco_learning.png", dpi=100)
    plt.close(fig)
    write_section("poco_learning", "\n".join([
        "## POCO and its baselines on an easy task",
        "",
        f"`python -m bench.poco_learning --seeds {' '.join(map(str, args.seeds))} --env-steps {args.env_steps}` "
        f"on {machine_line()}.",
        "",
        "Point reach (bench/point_reach.py): a flow-matching chunk prior (H=5) behaviour-cloned to convergence "
        "on 20 episodes of an expert blurred by noise of 1.5x the step limit; the same prior, demonstrations (kept "
        "in the replay store) and seeds for every learner; UTD 1, N=32 candidates, η=1e-3, ζ=1.0, γ=0.9, "
        "40 evaluation episodes every 500 env steps.",
        "",
        table,
        "",
        "![learning curves](poco_learning.png)",
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
