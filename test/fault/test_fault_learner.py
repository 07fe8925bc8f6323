"""Fault matrix #1: the learner killed with SIGKILL in the middle of an online run (sim_poco graph: bridge, learned
policy, sim reward, learner, episode manager; real processes, real DDS). It is killed right after it persisted the
first episode, while it trains on it: the moment a lost transition, a torn checkpoint or a graph waiting forever for
weights that never come would show. Restarted, it reloads every persisted transition and its newest checkpoint, and
the run goes on. (test_learning_graph.py covers a clean stop and restart.)"""
from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pytest
from std_msgs.msg import String

from fault_harness import Watch, kill9, sockets_besides_dds, wait_graph
from robot_rl import bringup
from robot_rl.policies import save_policy
from robot_rl.rl.replay import load_episodes
from robot_rl.ros import contract, records
from policy_fixtures import tiny_sim_policy
from robot_rl.ros.probe import Probe

pytestmark = pytest.mark.graph
NS = "/fault_learner"


def prior(path) -> None:
    save_policy(tiny_sim_policy(0), path, version=0)


def transitions(replay) -> list[int]:
    return [len(ep.actions) for ep in load_episodes(replay)] if replay.exists() else []


def test_learner_killed_mid_run_resumes_without_losing_a_transition(tmp_path):
    prior(tmp_path / "prior")
    out = tmp_path / "learner"
    replay = out / "replay"
    proc = bringup.start_graph(bringup.PACKAGE_ROOT / "config" / "graphs" / "sim_poco.yaml", NS, [
        "mujoco_bridge.task=reach", f"policy.checkpoint={tmp_path / 'prior'}",
        f"learner.checkpoint={tmp_path / 'prior'}", "learner.dataset=''", f"learner.output_dir={out}",
        "learner.poco.batch_size=16", "learner.poco.num_candidates=4", "learner.poco.warmup_updates=0",
        "learner.poco.critic_pretrain_updates=5", "learner.poco.critic_hidden=32",
        "episode_manager.max_steps=60", "episode_manager.num_episodes=0", "episode_manager.exit_when_done=false"])
    probe = Probe("learner_fault_probe")
    watch = Watch(probe, NS)
    watch.active = []
    probe.node.create_subscription(String, watch.topic(contract.POLICY_ACTIVE),
                                   lambda m: watch.active.append(records.decode(m.data, records.PolicyVersion)),
                                   contract.POLICY_ACTIVE.qos)
    try:
        wait_graph(proc, lambda: replay.exists() and list(replay.glob("episode_*.npz")), 240, "a persisted episode")
        kill9(proc, "learner")  # while it trains on that episode and writes its checkpoint
        stored = load_episodes(replay)
        before = [len(ep.actions) for ep in stored]
        checkpoint = out / "checkpoint" / "config.json"
        version_on_disk = json.loads(checkpoint.read_text())["version"] if checkpoint.exists() else 0
        log = out / "learner_log.jsonl"
        rows_before = len(log.read_text().splitlines()) if log.exists() else 0
        killed = time.monotonic()

        lines = len(proc.logs["learner"])
        proc.restart("learner")
        up = wait_graph(proc, lambda: next((m for line in proc.logs["learner"][lines:]
                                            if (m := re.search(r"(\d+) steps in the store \((\d+) online episodes "
                                                               r"resumed\), policy version (\d+)", line))), None),
                        120, "the learner to come back")
        # the run goes on: the next episode starts, runs, is stored and trained on, and newer weights come out
        wait_graph(proc, lambda: len(transitions(replay)) > len(before), 240, "the next episode persisted")
        wait_graph(proc, lambda: any(r.version > version_on_disk for r in watch.active), 240, "newer weights running")
        resumed = time.monotonic() - killed
        for name, p in proc.procs.items():
            assert sockets_besides_dds(p.pid, int(os.environ["ROS_DOMAIN_ID"])) == [], name
    finally:
        probe.close()
        proc.stop()
    steps, episodes, version = (int(g) for g in up.groups())
    after = load_episodes(replay)
    print(f"\nlearner killed after persisting {len(before)} episode(s) / {sum(before)} transitions (checkpoint "
          f"v{version_on_disk}, {rows_before} log rows); restarted with {episodes} episode(s) / {steps} "
          f"transitions, v{version}; {len(after)} episodes stored and newer weights running {resumed:.0f} s after "
          f"the kill")
    assert (episodes, steps, version) == (len(before), sum(before), version_on_disk)
    for old, new in zip(stored, after):  # every transition stored before the kill, bit for bit
        assert np.array_equal(old.states, new.states) and np.array_equal(old.actions, new.actions)
        assert np.array_equal(old.rewards, new.rewards)
    assert [len(ep.actions) for ep in after][:len(before)] == before
    versions = [json.loads(line)["version"] for line in log.read_text().splitlines()]
    assert versions == sorted(set(versions)) and versions[-1] > version_on_disk, versions


def test_learner_never_publishes_non_finite_weights_and_the_run_goes_on(tmp_path):
    """Updates that blow up (lr 1e30 drives the actor to inf / NaN): the learner reports the failure on
    learner/status, re-issues its last good weights (the prior) under the next version, and the episodes run on."""
    prior(tmp_path / "prior")
    ns = "/fault_learner_nan"
    proc = bringup.start_graph(bringup.PACKAGE_ROOT / "config" / "graphs" / "sim_poco.yaml", ns, [
        "mujoco_bridge.task=reach", f"policy.checkpoint={tmp_path / 'prior'}",
        f"learner.checkpoint={tmp_path / 'prior'}", "learner.dataset=''", f"learner.output_dir={tmp_path / 'out'}",
        "learner.poco.batch_size=8", "learner.poco.num_candidates=2", "learner.poco.warmup_updates=0",
        "learner.poco.critic_hidden=16", "learner.poco.lr=1e30", "episode_manager.max_steps=20",
        "episode_manager.num_episodes=2", f"episode_manager.results_path={tmp_path / 'episodes.jsonl'}"])
    probe = Probe("learner_nan_probe")
    statuses = probe.collect(f"{ns}/{contract.LEARNER_STATUS.name}", records.LearnerStatus, contract.LEARNER_STATUS.qos)
    active = probe.collect(f"{ns}/{contract.POLICY_ACTIVE.name}", records.PolicyVersion, contract.POLICY_ACTIVE.qos)
    try:
        assert proc.wait(timeout=240) == 0, proc.logs
    finally:
        probe.close()
        proc.stop()
    episodes = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 2  # the second episode ran on the old weights
    errors = [s for s in statuses if s.state == "error"]
    assert errors and "non-finite" in errors[-1].message, statuses
    assert active and all(a.message == "" for a in active)  # every version served was accepted and ran
    assert not (tmp_path / "out" / "learner_log.jsonl").exists()  # no trained row
    assert not (tmp_path / "out" / "checkpoint").exists()  # and nothing non-finite was saved
