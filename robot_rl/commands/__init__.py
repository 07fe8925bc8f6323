"""`robot-rl` command line. `demo` (the main job) lives here; every other subcommand lives next to the code it
drives, in a module listed in COMMAND_MODULES that defines `register(subparsers)`.

Those modules must keep heavy imports (torch, rclpy, mujoco) inside their command functions, so `robot-rl --help`
stays fast."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import sys
import time
from pathlib import Path

from robot_rl.demo import DemoConfig, load_demo_config, run_demo

# Modules that add subcommands: each defines `register(subparsers)`, which adds its parser and sets `func`.
COMMAND_MODULES: list[str] = [
    "robot_rl.data.record",
    "robot_rl.rl.commands",
    "robot_rl.rl.rft_cli",
    "robot_rl.rewards.cli",
]

DEMO_TASKS = {"reach": 150, "push": 300, "pick_lift": 300, "peg_insert": 300}  # task -> max control steps


def success_table(results: dict[str, list[dict]]) -> str:
    lines = ["| task | episodes | successes | success rate | mean steps (successful) |", "|---|---|---|---|---|"]
    for task, episodes in results.items():
        wins = [e for e in episodes if e["outcome"] == "success"]
        mean_steps = sum(e["steps"] for e in wins) / len(wins) if wins else float("nan")
        rate = len(wins) / len(episodes) if episodes else 0.0
        lines.append(f"| {task} | {len(episodes)} | {len(wins)} | {rate:.0%} | {mean_steps:.1f} |")
    return "\n".join(lines)


def read_results(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_scripted_graph(task: str, episodes: int, out: Path, noise: float, timeout: float, quiet: bool) -> list[dict]:
    """Run the scripted sim graph on one task (real processes, real DDS) and return its episode results."""
    from robot_rl.bringup import run_graph

    results = out / f"{task}.jsonl"
    results.unlink(missing_ok=True)
    code = run_graph(
        "config/graphs/sim_scripted.yaml",
        namespace=task,
        sets=[f"mujoco_bridge.task={task}", f"policy.noise={noise}", f"episode_manager.num_episodes={episodes}",
              f"episode_manager.max_steps={DEMO_TASKS[task]}", f"episode_manager.results_path={results}"],
        timeout=timeout,
        quiet=quiet,
    )
    if code != 0:
        raise RuntimeError(f"the {task} graph exited with code {code}")
    return read_results(results)


def cmd_sim_check(args) -> int:
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for task in args.tasks:
        start = time.monotonic()
        print(f"[demo] {task}: {args.episodes} episodes through the ROS graph "
              "(mujoco_bridge, policy, reward, episode_manager)", flush=True)
        results[task] = run_scripted_graph(task, args.episodes, out, args.noise, args.timeout, not args.verbose)
        for e in results[task]:
            print(f"[demo]   episode {e['episode']} seed {e['seed']}: {e['outcome']} in {e['steps']} steps", flush=True)
        print(f"[demo] {task} done in {time.monotonic() - start:.0f} s", flush=True)
    table = success_table(results)
    (out / "success_table.md").write_text(table + "\n")
    print("\nScripted expert through the sim graph:\n" + table)
    return 0


def cmd_demo(args) -> int:
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
    try:
        cfg = load_demo_config(args.config, task=args.task, mode=args.mode, online_episodes=args.online_episodes,
                               eval_episodes=args.eval_episodes, demo_episodes=args.demo_episodes, seed=args.seed,
                               out=args.out, verbose=args.verbose or None)
    except ValueError as err:
        print(f"robot-rl demo: {err}", file=sys.stderr)
        return 2
    run_demo(cfg)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="robot-rl")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the main job: demonstrations -> BC prior -> POCO online through the ROS "
                                       "graph -> before/after success table and learning curve")
    defaults = DemoConfig()
    demo.add_argument("--config", help="YAML of DemoConfig keys (e.g. config/demo_images.yaml); flags override it")
    demo.add_argument("--task", choices=sorted(DEMO_TASKS), help=f"default {defaults.task}")
    demo.add_argument("--mode", choices=["poco", "bc", "best_of_n"],
                      help=f"online learner (bc and best_of_n are the baselines); default {defaults.mode}")
    demo.add_argument("--online-episodes", type=int, help=f"default {defaults.online_episodes}")
    demo.add_argument("--eval-episodes", type=int, help=f"default {defaults.eval_episodes}")
    demo.add_argument("--demo-episodes", type=int, help=f"default {defaults.demo_episodes}")
    demo.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    demo.add_argument("--out", help=f"default {defaults.out}")
    demo.add_argument("--verbose", action="store_true", help="show every node's log")
    demo.set_defaults(func=cmd_demo)
    check = sub.add_parser("sim-check", help="scripted expert through the sim graph on every task: a success table")
    check.add_argument("--tasks", nargs="+", default=list(DEMO_TASKS), choices=sorted(DEMO_TASKS))
    check.add_argument("--episodes", type=int, default=5)
    check.add_argument("--noise", type=float, default=0.0, help="scripted expert noise")
    check.add_argument("--timeout", type=float, default=600.0, help="seconds per task graph")
    check.add_argument("--out", default="runs/sim_check")
    check.add_argument("--verbose", action="store_true", help="show every node's log")
    check.set_defaults(func=cmd_sim_check)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
