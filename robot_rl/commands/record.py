"""`robot-rl record`: run a collection graph (default: config/graphs/sim_record.yaml) until its recorder node has
saved the requested episodes, then check the dataset with the reader and print a summary.

    robot-rl record --root runs/data/reach --episodes 10 [--task reach] [--mode collect] [--set NODE.KEY=VALUE]
"""
from __future__ import annotations

import os
import random
from pathlib import Path

DEFAULT_GRAPH = "config/graphs/sim_record.yaml"


def summary(root: Path) -> str:
    """One line per episode (length, success, interventions) and the totals, read back through LeRobotReader."""
    from robot_rl.data.lerobot import LeRobotReader

    reader = LeRobotReader(root)   # validates: parquet rows == video frames == episode lengths
    lines = [f"{root}: {reader.num_episodes} episodes, {reader.num_frames} frames at {reader.fps:g} fps, "
             f"cameras {reader.cameras or 'none'}, tasks {reader.tasks}"]
    for i, ep in enumerate(reader.episodes):
        interventions = int(reader.episode(i)["is_intervention"].sum())
        lines.append(f"  episode {i}: {ep['length']} frames, success {ep.get('success')}, "
                     f"{interventions} intervention frames")
    return "\n".join(lines)


def cmd_record(args) -> int:
    from robot_rl.bringup import GraphError, load_graph, run_graph

    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
    try:
        nodes = {n.name for n in load_graph(args.graph).nodes}
    except GraphError as err:
        print(f"[record] {err}")
        return 2
    if "recorder" not in nodes:
        print(f"[record] {args.graph} has no 'recorder' node")
        return 2
    sets = [f"recorder.root={Path(args.root).resolve()}", f"recorder.num_episodes={args.episodes}"]
    if args.task and "mujoco_bridge" in nodes:
        sets.append(f"mujoco_bridge.task={args.task}")
    if args.mode and "teleop" in nodes:
        sets.append(f"teleop.mode={args.mode}")
    try:
        code = run_graph(args.graph, sets=sets + args.set, timeout=args.timeout, quiet=args.quiet)
    except GraphError as err:
        print(f"[record] {err}")
        return 2
    if Path(args.root, "meta", "info.json").exists():
        print(summary(Path(args.root)))
    return code


def register(subparsers) -> None:
    p = subparsers.add_parser("record", help="record episodes from a live graph into a LeRobot v3 dataset")
    p.add_argument("--root", required=True, help="dataset root (appended to when it exists)")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--graph", default=DEFAULT_GRAPH, help="a graph with a 'recorder' node")
    p.add_argument("--task", help="sim task (reach, push, pick_lift, peg_insert)")
    p.add_argument("--mode", choices=["intervene", "collect"], help="teleop: take-over only, or human drives")
    p.add_argument("--set", action="append", default=[], metavar="NODE.KEY=VALUE", help="override a parameter")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    p.add_argument("--quiet", action="store_true", help="hide the nodes' logs")
    p.set_defaults(func=cmd_record)

