"""The main job's numbers: `robot-rl demo` (noisy demonstrations → BC prior → POCO or a baseline through the ROS
graph → evaluation on the same seeds) for each learner and seed asked for.

    python -m bench.poco_demo [--modes poco bc] [--seeds 0 1 2] [--online-episodes 40]   # about 10 min per run

Writes the `poco_demo` section of docs/benchmarks.md (table with 95 % intervals, timings, learning-curve PNGs under
docs/) and docs/results/poco_demo.json (long format: per learner and seed prior_success, final_success, change,
online_over_evaluation, and every evaluation episode's outcome before and after).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np

from bench.report import ROOT, machine_line, markdown_table, write_results, write_section
from robot_rl.core.stats import Estimate, mean_interval, paired_difference, wilson
from robot_rl.core.types import EVAL_SEED
from robot_rl.demo import DemoConfig, run_demo


def outcomes(path: Path) -> dict[int, bool]:
    """Evaluation seed → success, from a demo run's eval_*.jsonl."""
    return {e["seed"]: e["outcome"] == "success" for e in map(json.loads, path.read_text().splitlines())}


def rate(won: list[bool]) -> str:
    e = wilson(int(sum(won)), len(won))
    return f"{100 * e.mean:.0f} [{100 * e.low:.0f}, {100 * e.high:.0f}]"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", nargs="+", default=["poco", "bc"], choices=["poco", "bc", "best_of_n"])
    parser.add_argument("--task", default="pick_lift")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="demo, prior and learner seeds")
    parser.add_argument("--online-episodes", type=int, default=DemoConfig().online_episodes)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
    rows, results, paired, cfg = [], [], {}, None
    for mode in args.modes:
        for seed in args.seeds:
            cfg = DemoConfig(task=args.task, poco={"mode": mode}, online_episodes=args.online_episodes, seed=seed,
                             out=str(ROOT / "runs" / "bench_poco_demo" / f"{mode}_{seed}"))
            summary = run_demo(cfg)
            if not args.no_write and seed == args.seeds[0]:
                shutil.copy(os.path.join(cfg.out, "learning_curve.png"), ROOT / "docs" / f"poco_demo_{mode}.png")
            before, after = (outcomes(Path(cfg.out) / f"eval_{which}.jsonl") for which in ("prior", "finetuned"))
            seeds = sorted(set(before) & set(after))
            won_before, won_after = [before[s] for s in seeds], [after[s] for s in seeds]
            paired.setdefault(mode, []).append((won_after, won_before))
            change = Estimate(**summary["change"])  # run_demo's paired change on the same seeds
            t = summary["timings_s"]
            rows.append([mode, seed, rate(won_before), f"{100 * summary['online_success']:.0f}", rate(won_after),
                         change.points(), f"{summary['online_over_evaluation']:.1f}x",
                         f"{t['online fine-tuning']:.0f}", f"{sum(t.values()):.0f}"])
            base = {"method": mode, "seed": seed}
            results += [dict(base, metric="prior_success", value=float(np.mean(won_before))),
                        dict(base, metric="final_success", value=float(np.mean(won_after))),
                        dict(base, metric="change", value=change.mean),
                        dict(base, metric="online_over_evaluation", value=summary["online_over_evaluation"]),
                        dict(base, metric="whole_job_s", value=sum(t.values()))]
            results += [dict(base, metric=f"outcome_{which}", episode=s, value=int(won[s]))
                        for which, won in (("prior", before), ("finetuned", after)) for s in seeds]
    table = markdown_table(["learner", "seed", "prior % (eval)", "online episodes %", "fine-tuned % (eval)",
                            "change (points, paired)", "online / eval wall per step", "online s", "whole job s"],
                           rows)
    lines = []
    for mode, runs in paired.items():
        n = min(len(a) for a, _ in runs)  # the same evaluation seeds in every run unless one was cut short
        pooled = paired_difference([a[:n] for a, _ in runs], [b[:n] for _, b in runs])
        per_seed = mean_interval([np.mean(a) - np.mean(b) for a, b in runs])
        lines.append(f"{mode} {pooled.points()} (paired bootstrap over seeds and episodes; "
                     f"t over the {len(runs)} seeds: {100 * per_seed.mean:+.1f}"
                     + (f" [{100 * per_seed.low:+.1f}, {100 * per_seed.high:+.1f}]" if len(runs) > 1 else "") + ")")
    print(table + "\n\nchange: " + "; ".join(lines))
    if args.no_write:
        return 0
    write_results("poco_demo", results)
    write_section("poco_demo", "\n".join([
        f"## The main job through the ROS graph ({args.task})",
        "",
        f"`python -m bench.poco_demo --modes {' '.join(args.modes)} --seeds {' '.join(map(str, args.seeds))} "
        f"--online-episodes {args.online_episodes}`. {machine_line()}",
        "",
        f"Per seed (demonstrations, prior and learner): {cfg.demo_episodes} scripted demonstrations with noise "
        f"{cfg.demo_noise} (environment state: cube pose and goal), a flow-matching prior ({cfg.bc_steps} BC steps, "
        f"hidden {cfg.hidden_dim}), {args.online_episodes} online episodes of at most {cfg.max_steps} steps through "
        f"bridge, policy, reward, learner and episode manager (config/poco.yaml), {cfg.eval_episodes} evaluation "
        f"episodes on seeds {EVAL_SEED}.. through the graph before and after. Success in % with the Wilson 95 % "
        "interval; changes paired on the evaluation seeds (bootstrap 95 %). Numbers: docs/results/poco_demo.json.",
        "",
        table,
        "",
        "Change of the evaluation success, pooled over seeds: " + "; ".join(lines) + ".",
        "",
        f"Learning curves (seed {args.seeds[0]}):",
        "",
        *[f"![{m}](poco_demo_{m}.png)" for m in args.modes],
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
