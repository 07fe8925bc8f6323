"""Nothing lost under load: the POCO graph (config/graphs/sim_poco.yaml) and the recording graph
(config/graphs/sim_record.yaml) run N episodes each beside 0, 2, 4 and 8 busy processes (bench/load.py) on 2 cores,
and every node's per-episode accounting is read from its status topic: transitions the learner stored, reward
records, frames the recorder saved, each against the steps the arm executed by its own counters (`episode/status`).
The goal is 0 lost at every level: a loaded graph should slow down (fewer episodes per minute, lockstep sim time
waits for the nodes) rather than drop data.

    python -m bench.graph_load [--episodes 20] [--levels 0 2 4 8] [--graphs poco record] [--cores 2] [--no-write]
"""
from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from bench.load import busy_workers, restrict_to_cores  # noqa: E402
from bench.report import machine_line, markdown_table, write_results, write_section  # noqa: E402

GRAPHS = {"poco": "config/graphs/sim_poco.yaml", "record": "config/graphs/sim_record.yaml"}
TASK = "reach"
# the learner's POCO settings: small enough that 2 CPU cores keep up with a 15 Hz episode most of the time
POCO_SETS = ["learner.poco.batch_size=64", "learner.poco.num_candidates=4", "learner.poco.critic_pretrain_updates=50",
             "learner.poco.critic_hidden=64"]
LOSS_METRICS = ("transitions_lost", "learner_rewards_lost", "reward_records_lost", "frames_lost",
                "frame_rewards_lost", "unreported_steps")
REPORT_WAIT_S = 120.0  # after the last episode, how long every node has to report its accounting of every episode


def make_prior(work: Path) -> tuple[Path, Path]:
    """A small behaviour-cloned prior on a few scripted reach demonstrations (the POCO graph's learner needs both)."""
    from robot_rl.data.collect_sim import collect_demos
    from robot_rl.rl.pretrain import pretrain

    demos, prior = work / "demos", work / "prior"
    collect_demos(TASK, episodes=4, noise=0.0, seed=100, root=demos, environment_state=True, max_steps=40)
    pretrain(demos, {"type": "flow", "horizon": 5, "execute_steps": 5, "hidden_dim": 64}, 300, prior, batch_size=64)
    return prior, demos


def graph_sets(graph: str, episodes: int, max_steps: int, out: Path, prior: Path, demos: Path) -> list[str]:
    common = [f"mujoco_bridge.task={TASK}", f"episode_manager.num_episodes={episodes}",
              f"episode_manager.max_steps={max_steps}"]
    if graph == "poco":
        return common + [f"policy.checkpoint={prior}", f"learner.checkpoint={prior}", f"learner.dataset={demos}",
                         f"learner.output_dir={out}", *POCO_SETS]
    return common + [f"recorder.root={out}", "recorder.num_episodes=0", "episode_manager.exit_when_done=false"]


def run_level(graph: str, workers: int, sets: list[str], episodes: int, timeout: float) -> dict:
    """One graph beside `workers` busy processes until every node has accounted for every episode."""
    from robot_rl import bringup
    from robot_rl.ros import contract, records
    from robot_rl.ros.probe import Probe, wait_for

    ns = f"load_{graph}_{workers}"
    probe = Probe(f"{ns}_probe")

    def collect(topic, record_type):
        return probe.collect(f"/{ns}/{topic.name}", record_type, topic.qos)

    statuses = collect(contract.EPISODE_STATUS, records.EpisodeStatus)
    learner = collect(contract.LEARNER_STATUS, records.LearnerStatus) if graph == "poco" else []
    rewards = collect(contract.REWARD_STATUS, records.RewardStatus)
    frames = collect(contract.RECORDER_STATUS, records.RecorderStatus) if graph == "record" else []

    def accounted(items, of=lambda item: item.accounting) -> dict[int, object]:
        return {a.episode: a for a in map(of, items) if a is not None}

    def ended() -> dict[int, records.EpisodeStatus]:
        return {s.episode: s for s in statuses if s.state == "ended"}

    def all_accounted() -> bool:
        nodes = [accounted(rewards)] + ([accounted(learner, lambda s: s.last_accounting)] if graph == "poco"
                                        else [accounted(frames)])
        return all(len(n) >= episodes for n in nodes)

    with busy_workers(workers, max_s=timeout + 120):
        proc = bringup.start_graph(ROOT / GRAPHS[graph], ns, sets)
        try:
            wait_for(lambda: any(s.state == "running" for s in statuses), timeout, "the first episode")
            start = time.monotonic()
            wait_for(lambda: len(ended()) >= episodes, timeout, f"{episodes} episodes")
            wall = time.monotonic() - start
        except AssertionError as err:
            logs = "\n".join(f"[{name}] {line}" for name, lines in proc.logs.items() for line in lines[-8:])
            raise RuntimeError(f"{graph} at {workers} busy workers: {err}\n{logs}") from None
        else:
            try:  # an episode a node has not reported by then counts as unreported (rows_of): nothing shows it kept
                wait_for(all_accounted, REPORT_WAIT_S, "every node's accounting of every episode")
            except AssertionError:
                pass
        finally:
            proc.stop()
            probe.close()
    return {"graph": graph, "ended": ended(), "wall_s": wall,
            "learner": accounted(learner, lambda s: s.last_accounting), "rewards": accounted(rewards),
            "frames": {f.accounting.episode: f for f in frames}}


def reporters(run: dict) -> dict[str, dict]:
    """The nodes that must account for every episode of this graph, by name: their accountings by episode."""
    return {"reward": run["rewards"], **({"learner": run["learner"]} if run["graph"] == "poco"
                                         else {"recorder": {e: f.accounting for e, f in run["frames"].items()}})}


def losses(run: dict, episode: int, executed: int) -> dict[str, int]:
    """Everything lost in one episode, by what was lost (0 where the graph has no such node); an episode a node did
    not report within REPORT_WAIT_S counts all its `executed` steps as unreported, once per such node."""
    def short(accounting) -> int:
        return max(accounting.lost or 0, 0)

    out = dict.fromkeys(LOSS_METRICS, 0)
    out["unreported_steps"] = executed * sum(episode not in node for node in reporters(run).values())
    if episode in run["learner"]:
        learned = run["learner"][episode]
        out.update(transitions_lost=short(learned), learner_rewards_lost=learned.rewards_lost)
    if episode in run["rewards"]:
        scored = run["rewards"][episode]
        out["reward_records_lost"] = max(short(scored), sum(scored.dropped.values()))
    if episode in run["frames"]:
        recorded = run["frames"][episode]
        out.update(frames_lost=short(recorded.accounting), frame_rewards_lost=recorded.accounting.rewards_lost)
    return out


def rows_of(graph: str, workers: int, run: dict) -> tuple[list[dict], dict]:
    """Long-format rows (per episode, and per run) and the run's summary."""
    method, rows, causes, per_episode = f"{graph}@{workers}", [], set(), {}
    executed = lost = 0
    for episode, status in sorted(run["ended"].items()):
        per = losses(run, episode, status.executed_steps or 0)
        per["executed_steps"] = status.executed_steps or 0
        per_episode[episode] = {k: v for k, v in per.items() if v}
        executed += per["executed_steps"]
        lost += sum(per[m] for m in LOSS_METRICS)
        rows += [{"method": method, "seed": 0, "episode": episode, "metric": k, "value": v} for k, v in per.items()]
        for name, accountings in reporters(run).items():
            node = accountings.get(episode)
            if node is None:
                causes.add(f"{name}: an episode not reported within {REPORT_WAIT_S:.0f} s")
            elif node.cause:
                causes.add(f"{name}: {node.cause}")
    sim_s = sum(s.duration_s for s in run["ended"].values())
    summary = {"episodes": len(run["ended"]), "executed_steps": executed, "lost": lost, "per_episode": per_episode,
               "episodes_per_min": 60 * len(run["ended"]) / run["wall_s"], "sim_s_per_wall_s": sim_s / run["wall_s"],
               "causes": sorted(causes)}
    rows += [{"method": method, "seed": 0, "metric": k, "value": summary[k]}
             for k in ("episodes", "executed_steps", "lost", "episodes_per_min", "sim_s_per_wall_s")]
    return rows, summary


def report(summaries: dict[tuple[str, int], dict], args) -> str:
    table = markdown_table(
        ["graph", "busy workers", "episodes", "executed steps", "lost (all nodes)", "episodes / min",
         "sim s / wall s", "causes"],
        [[graph, workers, s["episodes"], s["executed_steps"], s["lost"], f"{s['episodes_per_min']:.1f}",
          f"{s['sim_s_per_wall_s']:.2f}", "; ".join(s["causes"]) or "–"]
         for (graph, workers), s in summaries.items()])
    return ("## Nothing lost under load: the POCO and recording graphs beside busy processes\n\n"
            f"`python -m bench.graph_load --episodes {args.episodes} --levels {' '.join(map(str, args.levels))} "
            f"--cores {args.cores}` ({machine_line()}). Task {TASK}, {args.max_steps} steps at most per episode. "
            "Lost counts every executed step missing from the learner's store (or stored without its reward), every "
            "step without a reward record, every frame the recorder did not save (or saved without its reward), "
            "each against the arm's own count of executed steps (`episode/status`), and every step of an episode a "
            f"node had not reported {REPORT_WAIT_S:.0f} s after the last one ended; the causes are those the nodes "
            "named in `learner/status`, `reward/status` and `recorder/status`.\n\n" + table + "\n\n"
            + reading(summaries) + "\n")


def reading(summaries: dict[tuple[str, int], dict]) -> str:
    """Where each graph stops keeping up with real time, and what it lost in all."""
    parts = []
    for graph in dict.fromkeys(g for g, _ in summaries):
        levels = {w: s for (g, w), s in summaries.items() if g == graph}
        real_time = [w for w, s in levels.items() if s["sim_s_per_wall_s"] >= 1.0]
        lost, executed = sum(s["lost"] for s in levels.values()), sum(s["executed_steps"] for s in levels.values())
        if len(real_time) == len(levels):
            pace = "runs at least at real time at every level"
        elif real_time:
            pace = f"runs at least at real time up to {max(real_time)} busy workers and slower beyond"
        else:
            pace = "runs slower than real time at every level"
        parts.append(f"the {graph} graph {pace}; it lost {lost} of {executed} steps over all levels")
    return "Reading: " + "; ".join(parts) + ". A lockstep sim waits for the nodes, so load shows as time, not as data."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20, help="episodes per graph and load level")
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 2, 4, 8], help="busy worker processes")
    parser.add_argument("--graphs", nargs="+", default=list(GRAPHS), choices=list(GRAPHS))
    parser.add_argument("--cores", type=int, default=2, help="CPUs the graph and the load share (the first ones)")
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--timeout-per-episode", type=float, default=90.0, help="wall seconds")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ as it is")
    args = parser.parse_args(argv)
    if args.episodes < 1 or min(args.levels) < 0:
        parser.error("--episodes must be >= 1 and --levels >= 0")
    print(f"[graph_load] on CPUs {restrict_to_cores(args.cores)}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="graph_load_"))
    prior, demos = make_prior(work)
    rows, summaries = [], {}
    for graph in args.graphs:
        for workers in args.levels:
            out = work / f"{graph}_{workers}"
            run = run_level(graph, workers, graph_sets(graph, args.episodes, args.max_steps, out, prior, demos),
                            args.episodes, 60 + args.timeout_per_episode * args.episodes)
            more, summaries[graph, workers] = rows_of(graph, workers, run)
            rows += more
            print(f"[graph_load] {graph} at {workers} busy workers: {summaries[graph, workers]}", flush=True)
    section = report(summaries, args)
    print(section)
    if not args.no_write:
        write_results("graph_load", rows)
        write_section("graph_load", section)
    return 0 if all(s["lost"] == 0 for s in summaries.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
