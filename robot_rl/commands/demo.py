"""`robot-rl demo` (the main job) and `robot-rl sim-check` (the scripted expert through the sim graph)."""
from __future__ import annotations

import os
import random
import sys

from robot_rl.core.types import TASK_MAX_STEPS
from robot_rl.demo import DemoConfig


def cmd_demo(args) -> int:
    from robot_rl.demo import load_demo_config, run_demo

    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
    try:
        cfg = load_demo_config(args.config, task=args.task, mode=args.mode, online_episodes=args.online_episodes,
                               eval_episodes=args.eval_episodes, demo_episodes=args.demo_episodes, seed=args.seed,
                               out=args.out, verbose=args.verbose or None, sets=args.set)
    except ValueError as err:
        print(f"robot-rl demo: {err}", file=sys.stderr)
        return 2
    run_demo(cfg)
    return 0


def cmd_sim_check(args) -> int:
    from robot_rl.demo import sim_check

    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
    print("\nScripted expert through the sim graph:\n"
          + sim_check(args.tasks, args.episodes, args.out, args.noise, args.timeout, quiet=not args.verbose))
    return 0


def register(sub) -> None:
    demo = sub.add_parser("demo", help="the main job: demonstrations -> BC prior -> POCO online through the ROS "
                                       "graph -> before/after success table and learning curve")
    defaults = DemoConfig()
    demo.add_argument("--config", help="YAML of DemoConfig keys (e.g. config/demo_images.yaml); flags override it")
    demo.add_argument("--task", choices=sorted(TASK_MAX_STEPS), help=f"default {defaults.task}")
    demo.add_argument("--mode", choices=["poco", "bc", "best_of_n"],
                      help=f"online learner (bc and best_of_n are the baselines); default {defaults.poco.mode}")
    demo.add_argument("--online-episodes", type=int, help=f"default {defaults.online_episodes}")
    demo.add_argument("--eval-episodes", type=int, help=f"default {defaults.eval_episodes}")
    demo.add_argument("--demo-episodes", type=int, help=f"default {defaults.demo_episodes}")
    demo.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    demo.add_argument("--out", help=f"default {defaults.out}")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="any DemoConfig key, nested with dots, e.g. poco.num_candidates=16")
    demo.add_argument("--verbose", action="store_true", help="show every node's log")
    demo.set_defaults(func=cmd_demo)
    check = sub.add_parser("sim-check", help="scripted expert through the sim graph on every task: a success table")
    check.add_argument("--tasks", nargs="+", default=list(TASK_MAX_STEPS), choices=sorted(TASK_MAX_STEPS))
    check.add_argument("--episodes", type=int, default=5)
    check.add_argument("--noise", type=float, default=0.0, help="scripted expert noise")
    check.add_argument("--timeout", type=float, default=600.0, help="seconds per task graph")
    check.add_argument("--out", default="runs/sim_check")
    check.add_argument("--verbose", action="store_true", help="show every node's log")
    check.set_defaults(func=cmd_sim_check)
