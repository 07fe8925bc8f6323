"""The learner on another host, for real: the robot graph in one network namespace, the learner in another, joined
by a veth link with a /dev/shm each (bench/two_hosts.py), DDS discovery through static peers as between two
machines. Episodes cross to the learner, its weights cross back, and the robot runs them."""
import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from bench import two_hosts
from robot_rl.data.collect_sim import collect_demos
from robot_rl.policies import save_policy
from policy_fixtures import tiny_sim_policy

REASON = two_hosts.unavailable()
pytestmark = [pytest.mark.graph, pytest.mark.skipif(REASON is not None, reason=f"no second host: {REASON}")]


def graph(tmp_path, name: str, nodes: list[str], **extra) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "namespace": "robot1", "nodes": [{"executable": n} for n in nodes],
                                    "params_files": ["config/sim.yaml", "config/poco.yaml"], **extra}))
    return str(path)


def test_a_learner_on_another_host_trains_on_the_robots_episodes_and_the_robot_runs_its_weights(tmp_path):
    prior, demos, out = tmp_path / "prior", tmp_path / "demos", tmp_path / "learner"
    save_policy(tiny_sim_policy(0), prior, version=0)
    collect_demos("reach", episodes=2, noise=0.0, seed=0, root=demos, environment_state=True, max_steps=20)
    results = tmp_path / "episodes.jsonl"
    robot_graph = graph(tmp_path, "robot", ["mujoco_bridge", "policy", "reward", "episode_manager"],
                        exit_when="episode_manager")
    learner_graph = graph(tmp_path, "learner_host", ["learner"])
    bringup = [sys.executable, "-m", "robot_rl.bringup"]
    env = dict(os.environ)
    with two_hosts.two_hosts() as (robot, learner):
        learner_proc = subprocess.Popen(
            learner.command(bringup + [learner_graph, "--set", f"learner.checkpoint={prior}",
                                       "--set", f"learner.dataset={demos}", "--set", f"learner.output_dir={out}",
                                       "--set", "learner.policy_sync=each_episode",
                                       "--set", "learner.poco.batch_size=16", "--set", "learner.poco.num_candidates=2",
                                       "--set", "learner.poco.critic_pretrain_updates=2",
                                       "--set", "learner.poco.critic_hidden=32"]),
            env=learner.environment(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            robot_run = subprocess.run(
                robot.command(bringup + [robot_graph, "--timeout", "240", "--set", "mujoco_bridge.task=reach",
                                         "--set", f"policy.checkpoint={prior}",
                                         "--set", "episode_manager.policy_sync=each_episode",
                                         "--set", "episode_manager.num_episodes=2",
                                         "--set", "episode_manager.max_steps=20",
                                         "--set", f"episode_manager.results_path={results}"]),
                env=robot.environment(env), capture_output=True, text=True, timeout=300)
        finally:
            learner_proc.send_signal(signal.SIGINT)
            learner_log = learner_proc.communicate(timeout=60)[0]
    assert robot_run.returncode == 0, robot_run.stdout[-6000:] + learner_log[-3000:]
    episodes = [json.loads(line) for line in results.read_text().splitlines()]
    rows = [json.loads(line) for line in (out / "learner_log.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in rows] == [0, 1]  # both episodes crossed to the learner and were trained on
    assert [r["steps"] for r in rows] == [e["executed_steps"] - e["held_steps"] for e in episodes]
    # each_episode: the second episode started only on the weights trained on the first, which crossed back
    assert "policy version 1 active" in robot_run.stdout and "policy version 2 active" in robot_run.stdout, \
        robot_run.stdout[-6000:]
