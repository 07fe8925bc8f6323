"""POCO against its baselines on the point-reach toy (bench/point_reach.py): per training seed one noisy prior and one
set of demonstrations shared by every learner (POCO, BC only, best-of-N with the critic, the actor-gradient baseline
through the flow), the same env-step budget, every evaluation on the same episode seeds. Powered like the pick_lift
bench: 100-episode evaluations, 95 % intervals, paired differences (bench/learning_table.py).

    python -m bench.poco_learning [--seeds 0 1 2] [--modes poco bc best_of_n actor_gradient] [--env-steps 3000]
        [--eval-every 500] [--eval-episodes 100] [--workers 2] [--ablate LABEL:poco.KEY=VALUE[,...]]

Writes the `poco_learning` section of docs/benchmarks.md, docs/results/poco_learning.json and docs/poco_learning.png.
"""
from __future__ import annotations

import argparse
import multiprocessing
import time

from tqdm import tqdm

from bench.learning_table import MODES, long_rows, plot, summary_table, variants
from bench.report import ROOT, machine_line, write_results, write_section
from robot_rl.core.types import EVAL_SEED

NAME = "poco_learning"


def run_job(job: tuple[int, str, list[str], dict]) -> dict:
    """One learner (a mode or an ablation's label) from one seed's prior."""
    import torch

    from bench.point_reach import run

    torch.set_num_threads(1)
    seed, label, sets, budget = job
    start = time.monotonic()
    curve = run(label if label in MODES else "poco", seed, sets=sets, **budget)
    return {"seed": seed, "mode": label, "env_steps": curve.env_steps, "metrics": curve.metrics,
            "outcomes": [o.astype(int).tolist() for o in curve.outcomes], "wall_s": time.monotonic() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--ablate", action="append", default=[], metavar="LABEL:poco.KEY=VALUE[,...]",
                        help="POCO with these settings, reported as LABEL")
    parser.add_argument("--env-steps", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="processes (one core each)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    budget = {"env_steps": args.env_steps, "eval_every": args.eval_every, "eval_episodes": args.eval_episodes}
    learners = variants(args.modes, [], args.ablate)
    jobs = [(seed, label, sets, budget) for seed in args.seeds for label, sets in learners]
    start = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        runs = list(tqdm(pool.imap_unordered(run_job, jobs), total=len(jobs), desc="point-reach learners"))
    labels = [label for label, _ in learners]
    table = summary_table(runs, labels)
    print(table)
    if args.no_write:
        return 0
    write_results(NAME, long_rows(runs))
    plot(runs, labels, ROOT / "docs" / f"{NAME}.png", "point reach, noisy prior")
    ablations = "".join(f" --ablate {a}" for a in args.ablate)
    write_section(NAME, "\n".join([
        "## POCO and its baselines on an easy task (point reach, powered evaluation)",
        "",
        f"`python -m bench.poco_learning --seeds {' '.join(map(str, args.seeds))} --modes {' '.join(args.modes)} "
        f"--env-steps {args.env_steps} --eval-every {args.eval_every} --eval-episodes {args.eval_episodes} "
        f"--workers {args.workers}{ablations}` ({(time.monotonic() - start) / 60:.0f} min, one process per run). "
        f"{machine_line()}",
        "",
        "Point reach (bench/point_reach.py): per training seed a flow-matching chunk prior (H=5) behaviour-cloned on "
        "20 episodes of an expert blurred by noise of 1.5x the step limit, shared by every learner, the "
        "demonstrations kept in the replay store; POCOConfig defaults at the toy's scale (point_reach.TOY: batch 64, "
        f"γ 0.9, critic 64 × 2, lr 1e-3) unless set above; UTD 1; evaluations on episodes {EVAL_SEED}.."
        f"{EVAL_SEED + args.eval_episodes - 1} for every learner and seed. Intervals are 95 %: t over seeds for "
        "means, a paired bootstrap over seeds and episodes for changes. Step 0 is the prior after the critic's "
        f"warm-up: best_of_n already picks among N candidates there. Numbers: docs/results/{NAME}.json.",
        "",
        table,
        "",
        f"![success against env steps]({NAME}.png)",
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
