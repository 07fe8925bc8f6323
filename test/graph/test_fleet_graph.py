"""A fleet through the ROS graph (real processes, real DDS): two simulated robots in their own namespaces feed one
learner, which stores every robot's episodes in one replay store and sends each new version to both robots."""
import json

import numpy as np
import pytest

from robot_rl import bringup
from robot_rl.data.collect_sim import collect_demos
from robot_rl.policies import save_policy
from robot_rl.rl.replay import load_episodes
from robot_rl.ros import contract, records
from robot_rl.ros.probe import Probe
from policy_fixtures import tiny_sim_policy

pytestmark = pytest.mark.graph


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_robots_feed_one_learner_and_both_run_its_new_weights(tmp_path):
    prior, demos, out = tmp_path / "prior", tmp_path / "demos", tmp_path / "learner"
    save_policy(tiny_sim_policy(0), prior, version=0)
    collect_demos("reach", episodes=2, noise=0.0, seed=0, root=demos, environment_state=True, max_steps=20)
    probe = Probe("fleet_probe")
    active = {r: probe.collect(f"/{r}/{contract.POLICY_ACTIVE.name}", records.PolicyVersion,
                               contract.POLICY_ACTIVE.qos) for r in ("robot1", "robot2")}
    results = {r: tmp_path / f"{r}.jsonl" for r in ("robot1", "robot2")}
    proc = bringup.start_graph("config/graphs/sim_fleet.yaml", None, [
        "mujoco_bridge.task=reach", f"policy.checkpoint={prior}", f"learner.checkpoint={prior}",
        f"learner.dataset={demos}", f"learner.output_dir={out}", "learner.poco.batch_size=16",
        "learner.poco.num_candidates=2", "learner.poco.warmup_updates=0", "learner.poco.critic_pretrain_updates=2",
        "learner.poco.critic_hidden=32", "learner.publish_every=10", "episode_manager.max_steps=20",
        "episode_manager.num_episodes=2"] + [f"{r}/episode_manager.results_path={path}" for r, path in results.items()])
    try:
        assert proc.wait(timeout=300) == 0, {k: v[-20:] for k, v in proc.logs.items()}
    finally:
        probe.close()
    log = read_jsonl(out / "learner_log.jsonl")
    assert sorted((row["robot"], row["episode"]) for row in log) == [("robot1", 0), ("robot1", 1),
                                                                    ("robot2", 0), ("robot2", 1)]
    stored = load_episodes(out / "replay")
    assert len(stored) == 4  # one store, both robots' episodes
    for robot, path in results.items():
        episodes = read_jsonl(path)
        mine = [row for row in log if row["robot"] == robot]
        # every action each robot's driver executed became a transition of the store
        learner_warnings = [line for key, lines in proc.logs.items() if "learner" in key for line in lines
                            if "transitions of" in line]   # the learner's accounting names what a shortfall lost
        assert [row["steps"] for row in mine] == [e["executed_steps"] - e["held_steps"] for e in episodes], \
            learner_warnings
        # each robot's policy node took the learner's new weights (it swaps them in between its episodes)
        assert active[robot] and max(a.version for a in active[robot]) > 0, active[robot]
    starts = {tuple(np.round(ep.states[0], 3)) for ep in stored}
    assert len(starts) == 4  # two scenes each: robot2's bridge runs seeds of its own
