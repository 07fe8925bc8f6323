"""The main job's numbers: `robot-rl demo` (noisy demonstrations → BC prior → POCO or a baseline through the ROS
graph → evaluation on the same seeds) for each learner asked for.

    python -m bench.poco_demo [--modes poco bc] [--seeds 0 1 2] [--online-episodes 15]   # defaults: ~35 min

Writes the `poco_demo` section of docs/benchmarks.md (table, timings, learning-curve PNGs under docs/).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil

from bench.report import ROOT, machine_line, markdown_table, write_section
from robot_rl.core.types import EVAL_SEED
from robot_rl.demo import DemoConfig, run_demo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", nargs="+", default=["poco", "bc"], choices=["poco", "bc", "best_of_n"])
    parser.add_argument("--task", default="pick_lift")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="demo, prior and learner seeds")
    parser.add_argument("--online-episodes", type=int, default=DemoConfig().online_episodes)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
    rows, changes, cfg = [], {}, None
    for mode in args.modes:
        for seed in args.seeds:
            cfg = DemoConfig(task=args.task, poco={"mode": mode}, online_episodes=args.online_episodes, seed=seed,
                             out=str(ROOT / "runs" / "bench_poco_demo" / f"{mode}_{seed}"))
            summary = run_demo(cfg)
            if not args.no_write and seed == args.seeds[0]:
                shutil.copy(os.path.join(cfg.out, "learning_curve.png"), ROOT / "docs" / f"poco_demo_{mode}.png")
            changes.setdefault(mode, []).append(summary["success_finetuned"] - summary["success_prior"])
            t = summary["timings_s"]
            rows.append([mode, seed, f"{summary['success_prior']:.0%}", f"{summary['online_success']:.0%}",
                         f"{summary['success_finetuned']:.0%}",
                         f"{summary['success_finetuned'] - summary['success_prior']:+.0%}",
                         f"{t['online fine-tuning']:.0f}", f"{sum(t.values()):.0f}"])
    table = markdown_table(["learner", "seed", "prior (eval)", "online episodes", "fine-tuned (eval)", "change",
                            "online s", "whole job s"], rows)
    print(table)
    if args.no_write:
        return 0
    write_section("poco_demo", "\n".join([
        f"## The main job through the ROS graph ({args.task})",
        "",
        f"`python -m bench.poco_demo --modes {' '.join(args.modes)} --seeds {' '.join(map(str, args.seeds))} "
        f"--online-episodes {args.online_episodes}`. {machine_line()}",
        "",
        f"{cfg.demo_episodes} scripted demonstrations with noise {cfg.demo_noise} (environment state: cube pose and "
        f"goal), a flow-matching prior ({cfg.bc_steps} BC steps, hidden {cfg.hidden_dim}), {args.online_episodes} "
        f"online episodes of at most {cfg.max_steps} steps through bridge, policy, reward, learner and episode manager "
        f"(config/poco.yaml), {cfg.eval_episodes} evaluation episodes on seeds {EVAL_SEED}.. before and after.",
        "",
        table,
        "",
        "Mean change of the evaluation success: " + ", ".join(
            f"{m} {100 * sum(c) / len(c):+.0f} points ({', '.join(f'{100 * x:+.0f}' for x in c)})"
            for m, c in changes.items())
        + f". One {cfg.eval_episodes}-episode evaluation has a standard error of about 11 points at 50 %: a single "
          "run's change is not significant, the sign across seeds and learners is what to read.",
        "",
        f"Learning curves (seed {args.seeds[0]}):",
        "",
        *[f"![{m}](poco_demo_{m}.png)" for m in args.modes],
    ]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
