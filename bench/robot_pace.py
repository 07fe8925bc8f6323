"""At a robot's pace, does the arm wait for the learner? Online POCO against evaluation alone, wall time per env step.

The main job's lockstep sim runs about four times faster than real time in evaluation, so its online / evaluation
ratio (about 5x, the poco_demo section) compares one learner update per step with a sim that never idles. A robot
moves at its control rate. Here the bridge is paced like a robot (`lockstep: false`, `realtime_factor` 1) and the
main job's two graphs run the same number of episodes from the same scene seeds, each watched by a probe on
`episode/status` (wall clock):
  evaluation  sim_eval: bridge, the prior's policy, reward, episode manager;
  online      sim_poco: the same, plus POCO learning from the prior with the main job's settings (UTD 1, continuous
              policy sync, the episode manager holding the next episode while more than `max_lag_episodes` ended
              episodes owe updates).
Wall per env step = wall time from the first episode's start to the last one's end / the steps the arm executed, so
any hold for the learner counts. The demonstrations and prior are the main job's (`robot-rl demo` stages 1-2 with
its defaults and `--seed`), made once under the work directory.

    python -m bench.robot_pace [--episodes 10] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import shutil
import time

import numpy as np

from bench.report import ROOT, machine_line, markdown_table, write_results, write_section

ROBOT_PACE = ["mujoco_bridge.lockstep=false", "mujoco_bridge.realtime_factor=1.0"]


def watch(probe, namespace: str) -> list:
    """(wall time of arrival, EpisodeStatus) of every record on the graph's `episode/status`."""
    from std_msgs.msg import String

    from robot_rl.ros import contract, records

    received: list = []
    probe.node.create_subscription(
        String, f"/{namespace}/{contract.EPISODE_STATUS.name}",
        lambda m: received.append((time.monotonic(), records.decode(m.data, records.EpisodeStatus))),
        contract.EPISODE_STATUS.qos)
    return received


def paced(run, namespace: str) -> dict:
    """Run one graph (`run()` blocks until it exits) and time its episodes on the wall clock."""
    from robot_rl.ros.probe import Probe

    probe = Probe("robot_pace_probe")
    statuses = watch(probe, namespace)
    try:
        run()
        exited = time.monotonic()
    finally:
        probe.close()
    starts = sorted({s.episode: t for t, s in reversed(statuses) if s.state == "running"}.values())
    ended = {s.episode: (t, s) for t, s in reversed(statuses) if s.state == "ended"}   # first arrival of each
    ends = sorted(t for t, _ in ended.values())
    steps = sum(s.executed_steps for _, s in ended.values())
    gaps = [start - end for start, end in zip(starts[1:], ends)]   # episode i's end to episode i+1's start
    return {"episodes": len(ended), "executed_steps": steps, "wall_s": ends[-1] - starts[0],
            "ms_per_step": 1e3 * (ends[-1] - starts[0]) / steps, "mean_gap_s": float(np.mean(gaps)),
            "max_gap_s": float(np.max(gaps)), "after_last_s": exited - ends[-1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=10, help="episodes per graph")
    parser.add_argument("--seed", type=int, default=0, help="demonstrations, prior and learner seed")
    parser.add_argument("--work", default="runs/bench_robot_pace")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from robot_rl.core.types import DEMO_POLICY
    from robot_rl.data.collect_sim import collect_demos
    from robot_rl.demo import DemoConfig, evaluate_in_graph, finetune_in_graph
    from robot_rl.rl.pretrain import pretrain

    torch.set_num_threads(1)
    started = time.time()
    work = ROOT / args.work / f"seed{args.seed}"
    cfg = DemoConfig(seed=args.seed, eval_episodes=args.episodes, online_episodes=args.episodes, out=str(work))
    demos, prior = work / "demos", work / "prior"
    if not (prior / "config.json").exists():
        collect_demos(cfg.task, cfg.demo_episodes, cfg.demo_noise, cfg.seed, demos, max_steps=cfg.max_steps,
                      environment_state=True)
        pretrain(demos, {**DEMO_POLICY, "hidden_dim": cfg.hidden_dim}, cfg.bc_steps, prior,
                 batch_size=cfg.bc_batch_size, seed=cfg.seed)
    same_scenes = [f"mujoco_bridge.seed={cfg.seed}"]   # evaluate_in_graph's own seeds are overridden: same scenes
    shutil.rmtree(work / "learner", ignore_errors=True)   # a learner state left there would be resumed
    measured = {
        "evaluation": paced(lambda: evaluate_in_graph(prior, work / "evaluation.jsonl", cfg,
                                                      ROBOT_PACE + same_scenes), cfg.task),
        "online": paced(lambda: finetune_in_graph(prior, demos, work / "learner", cfg, ROBOT_PACE + same_scenes),
                        cfg.task),
    }
    ratio = measured["online"]["ms_per_step"] / measured["evaluation"]["ms_per_step"]
    header = ["graph", "episodes", "executed steps", "wall s (first start to last end)", "ms / env step",
              "between episodes, mean / max s", "graph exits, s after the last episode"]
    table = [[name, m["episodes"], m["executed_steps"], f"{m['wall_s']:.0f}", f"{m['ms_per_step']:.1f}",
              f"{m['mean_gap_s']:.1f} / {m['max_gap_s']:.1f}", f"{m['after_last_s']:.0f}"]
             for name, m in measured.items()]
    print(markdown_table(header, table) + f"\n\nonline / evaluation wall per env step: {ratio:.2f}x", flush=True)
    if args.no_write:
        return 0
    rows = [{"method": name, "seed": args.seed, "metric": k, "value": float(v)}
            for name, m in measured.items() for k, v in m.items()]
    rows.append({"method": "online", "seed": args.seed, "metric": "online_over_evaluation", "value": ratio})
    write_results("robot_pace", rows)
    write_section("robot_pace", f"""## At a robot's pace: online POCO against evaluation alone (pick_lift, ROS graph)

`python -m bench.robot_pace --episodes {args.episodes} --seed {args.seed}` ({(time.time() - started) / 60:.0f} min).
{machine_line()}

The bridge paced like a robot (`lockstep: false`, `realtime_factor` 1, 15 Hz control); the main job's prior
(seed {args.seed}) and its graphs: sim_eval (no learner) and sim_poco (POCO with the main job's settings: UTD 1,
continuous policy sync, the episode manager holding an episode while more than `max_lag_episodes` ended episodes owe
updates), {args.episodes} episodes each from scene seed {args.seed}, timed on the wall clock by a probe on
`episode/status`. Wall per env step counts every hold for the learner between episodes.

{markdown_table(header, table)}

**Online / evaluation wall per env step: {ratio:.2f}x** (issue goal ≤ 1.2x). The lockstep main job's ratio (about 5x)
is a sim that outruns real time fourfold waiting for the learner; at the robot's pace the same learner
{"keeps up" if ratio <= 1.2 else "does not keep up"} on these 2 cores.

Numbers: docs/results/robot_pace.json.""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
