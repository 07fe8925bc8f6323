"""Several simulated robots feeding one learner (config/graphs/sim_fleet.yaml): env steps per wall second and learner
updates per wall second with 1, 2 and 3 robots, side by side in one run on this machine, and where its cores
saturate.

Each robot runs bridge, policy, reward and episode manager in its own namespace (its own scene seeds); the one POCO
learner trains continuously (`policy_sync: continuous`, UTD 1) on every robot's episodes. The prior is a briefly
behaviour-cloned flow policy of the demo's size (throughput does not depend on how good it is).

    python -m bench.fleet_scaling [--robots 1 2 3] [--episodes 3] [--max-steps 100]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

from bench.report import ROOT, machine_line, markdown_table, write_results, write_section

SEED_STRIDE = 1000  # robot i runs scene seeds from i·SEED_STRIDE


def fleet_graph(path: Path, robots: int) -> Path:
    """sim_fleet.yaml with `robots` robots."""
    graph = yaml.safe_load((ROOT / "config" / "graphs" / "sim_fleet.yaml").read_text())
    graph["robots"] = {f"robot{i + 1}": ({"mujoco_bridge": {"seed": i * SEED_STRIDE}} if i else {})
                       for i in range(robots)}
    graph["params_files"] = [str(ROOT / f) for f in graph["params_files"]]
    path.write_text(yaml.safe_dump(graph))
    return path


def timed(probe, topic: str, record_type, qos) -> list[tuple[float, object]]:
    """(wall time of arrival, record) of every JSON record on `topic`."""
    from std_msgs.msg import String

    from robot_rl.ros import records

    received: list = []
    probe.node.create_subscription(
        String, topic, lambda m: received.append((time.monotonic(), records.decode(m.data, record_type))), qos)
    return received


def run_fleet(graph: Path, work: Path, prior: Path, demos: Path, episodes: int, max_steps: int) -> dict:
    """One fleet run, timed on the wall clock from its first episode's start to the learner's last update."""
    from robot_rl import bringup
    from robot_rl.ros import contract, records
    from robot_rl.ros.probe import Probe

    out = work / "learner"
    robots = list(yaml.safe_load(graph.read_text())["robots"])
    sets = [f"policy.checkpoint={prior}", f"learner.checkpoint={prior}", f"learner.dataset={demos}",
            f"learner.output_dir={out}", f"episode_manager.num_episodes={episodes}",
            f"episode_manager.max_steps={max_steps}"]
    probe = Probe("fleet_scaling_probe")
    statuses = [timed(probe, f"/{r}/{contract.EPISODE_STATUS.name}", records.EpisodeStatus,
                      contract.EPISODE_STATUS.qos) for r in robots]
    learner = timed(probe, f"/fleet/{contract.LEARNER_STATUS.name}", records.LearnerStatus, contract.LEARNER_STATUS.qos)
    try:
        proc = bringup.start_graph(graph, None, sets)
        code = proc.wait(timeout=1800)
    finally:
        probe.close()
    if code != 0:
        raise RuntimeError(f"fleet of {len(robots)} exited {code}: " + "\n".join(
            f"[{k}] {line}" for k, lines in proc.logs.items() for line in lines[-5:]))
    first = min(t for robot in statuses for t, s in robot if s.state == "running")
    ends = [(t, s) for robot in statuses for t, s in robot if s.state == "ended"]
    last_end = max(t for t, _ in ends)
    steps = sum(s.executed_steps - s.held_steps for _, s in ends)
    # the critic's warm-up on the demos runs while the first episodes do; its updates are not counted
    warm = max(first, min(t for t, s in learner if s.state != "warming_up"))
    at_start = max((s.updates for t, s in learner if t <= warm), default=0)
    final_t, final = max(learner, key=lambda item: item[1].updates)
    log = [json.loads(line) for line in (out / "learner_log.jsonl").read_text().splitlines()]
    for line in proc.logs["learner"]:
        if "transitions of" in line:  # an episode stored short, with the cause (core.episodes.tally)
            print(f"[fleet of {len(robots)}] {line}", flush=True)
    return {"robots": len(robots), "episodes": len(ends), "env_steps": steps,
            "env_steps_per_s": steps / (last_end - first),
            "updates_per_s": (final.updates - at_start) / (final_t - warm),
            "learner_lag_s": final_t - last_end, "stored_steps": sum(r["steps"] for r in log),
            "load_1min": os.getloadavg()[0]}


def reading(measured: list[dict]) -> str:
    """Where the cores saturate: the fleet size after which env steps / s stop rising."""
    best = max(measured, key=lambda m: m["env_steps_per_s"])
    lost = int(sum(m["env_steps"] - m["stored_steps"] for m in measured))
    return (f"Reading: env steps / s peak at {best['robots']} robot(s) ({best['env_steps_per_s']:.1f}/s); beyond, "
            f"the robots and the learner compete for the cores, and the learner's updates / s fall with every robot "
            f"added, so it finishes further behind the robots. Transitions lost: {lost} of "
            f"{int(sum(m['env_steps'] for m in measured))}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--robots", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--episodes", type=int, default=3, help="episodes per robot")
    parser.add_argument("--max-steps", type=int, default=100)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from robot_rl.data.collect_sim import collect_demos
    from robot_rl.rl.pretrain import pretrain

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="fleet_scaling_") as tmp:
        tmp = Path(tmp)
        demos, prior = tmp / "demos", tmp / "prior"
        collect_demos("pick_lift", 4, 0.1, 0, demos, environment_state=True, max_steps=args.max_steps)
        pretrain(demos, {"type": "flow", "horizon": 5, "execute_steps": 5, "hidden_dim": 128}, 50, prior)
        measured = []
        for n in args.robots:
            work = tmp / f"fleet{n}"
            work.mkdir()
            measured.append(run_fleet(fleet_graph(work / "graph.yaml", n), work, prior, demos, args.episodes,
                                      args.max_steps))
            print(json.dumps(measured[-1]), flush=True)
    one = measured[0]
    table = [[m["robots"], m["episodes"], m["env_steps"], f"{m['env_steps_per_s']:.1f}",
              f"{m['env_steps_per_s'] / one['env_steps_per_s']:.2f}", f"{m['updates_per_s']:.1f}",
              f"{m['learner_lag_s']:.0f}", f"{m['stored_steps']}/{m['env_steps']}", f"{m['load_1min']:.1f}"]
             for m in measured]
    header = ["robots", "episodes", "env steps", "env steps / wall s (all robots)", "× 1 robot",
              "learner updates / wall s", "learner done, s after the last episode", "transitions stored / executed",
              "load (1 min) at end"]
    rows = [{"method": f"{m['robots']}_robots", "seed": 0, "metric": k, "value": float(v)}
            for m in measured for k, v in m.items() if k != "robots"]
    write_results("fleet_scaling", rows)
    write_section("fleet_scaling", f"""## Several robots, one learner: throughput with 1, 2, 3 simulated robots

`python -m bench.fleet_scaling --robots {' '.join(map(str, args.robots))} --episodes {args.episodes} --max-steps \
{args.max_steps}` ({(time.time() - started) / 60:.1f} min). {machine_line()}

config/graphs/sim_fleet.yaml with N robots (bridge, policy, reward, episode manager each, lockstep sim, pick_lift,
{args.max_steps}-step episodes, {args.episodes} per robot) and one POCO learner (continuous policy sync, UTD 1, the
demo's flow policy size), timed on the wall clock by a probe on every robot's `episode/status` and the learner's
`learner/status`: env steps / s = the actions all drivers executed from the first episode's start to the last
episode's end; learner updates / s = its updates from the end of its critic warm-up (or the first episode's start,
whichever is later) to its last update (UTD 1: it owes one per step, so updates / s below env steps / s is a learner
that falls behind and finishes after the robots).
Every robot and the learner share this machine's cores.

{markdown_table(header, table)}

{reading(measured)}

Numbers: [docs/results/fleet_scaling.json](results/fleet_scaling.json).""")
    print(markdown_table(header, table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
