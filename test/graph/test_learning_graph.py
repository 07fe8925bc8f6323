"""Learned policies through the ROS graph (real processes, real DDS): weights hot-swapped only between episodes,
corrupt weights refused while the old ones keep running, and the learner node training online, persisting its
replay store and resuming after a restart without losing transitions."""
import hashlib
import json

import numpy as np
import pytest
from std_msgs.msg import String, UInt8MultiArray
from std_srvs.srv import Trigger

from robot_rl import bringup
from robot_rl.data.collect_sim import collect_demos
from robot_rl.data.lerobot import LeRobotReader
from robot_rl.core.state import ENVIRONMENT_STATE_NAMES, STATE_NAMES
from robot_rl.policies import policy_to_bytes, save_policy, sha256_hex
from robot_rl.rl.replay import load_episodes
from robot_rl.ros import contract, records
from robot_rl.ros.probe import Probe, wait_for
from policy_fixtures import tiny_sim_policy

pytestmark = pytest.mark.graph
STATE_DIM = len(STATE_NAMES) + len(ENVIRONMENT_STATE_NAMES)


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    path = tmp_path_factory.mktemp("prior")
    save_policy(tiny_sim_policy(0), path, version=0)
    return path


def test_weights_swap_only_between_episodes_and_corrupt_weights_are_refused(prior):
    ns = "swap_ci"
    proc = bringup.start_graph("config/graphs/sim_eval.yaml", ns, [
        "mujoco_bridge.task=reach", f"policy.checkpoint={prior}", "episode_manager.autostart=false",
        "episode_manager.num_episodes=0", "episode_manager.max_steps=100000", "episode_manager.exit_when_done=false"])
    probe = Probe("swap_probe")
    active = probe.collect(f"/{ns}/{contract.POLICY_ACTIVE.name}", records.PolicyVersion, contract.POLICY_ACTIVE.qos)
    statuses = probe.collect(f"/{ns}/{contract.EPISODE_STATUS.name}", records.EpisodeStatus,
                             contract.EPISODE_STATUS.qos)
    pub_version = probe.node.create_publisher(String, f"/{ns}/{contract.POLICY_VERSION.name}",
                                              contract.POLICY_VERSION.qos)
    pub_weights = probe.node.create_publisher(UInt8MultiArray, f"/{ns}/{contract.POLICY_WEIGHTS.name}",
                                              contract.POLICY_WEIGHTS.qos)

    def send(blob: bytes, version: int) -> None:
        pub_version.publish(String(data=records.encode(records.PolicyVersion(
            stamp=0.0, version=version, sha256=hashlib.sha256(blob).hexdigest(), policy_type="flow"))))
        pub_weights.publish(UInt8MultiArray(data=blob))

    try:
        wait_for(lambda: active and active[-1].version == 0, 60, "the policy node to report version 0")
        assert probe.call(Trigger, f"/{ns}/episode/start", Trigger.Request()).success
        wait_for(lambda: statuses and statuses[-1].state == "running", 30, "the episode to run")
        new = policy_to_bytes(tiny_sim_policy(1), version=1)
        send(new, 1)
        with pytest.raises(AssertionError):  # staged, not applied: the episode is still running
            wait_for(lambda: active[-1].version == 1, 3.0, "a swap mid-episode")
        assert probe.call(Trigger, f"/{ns}/episode/stop", Trigger.Request()).success
        wait_for(lambda: active[-1].version == 1, 20, "the swap at the episode boundary")
        assert active[-1].sha256 == sha256_hex(new) and active[-1].message == ""

        corrupt = bytearray(policy_to_bytes(tiny_sim_policy(2), version=2))
        corrupt[len(corrupt) // 2] ^= 0xFF  # a flipped byte inside the tensor data (the record matches the bytes)
        send(bytes(corrupt[:-100]), 2)  # truncated as well
        refusal = wait_for(lambda: next((a for a in active if "refused" in a.message), None), 20, "a refusal")
        assert refusal.version == 1, refusal
        send(b"\x80\x04pickle", 3)  # not a safetensors blob at all
        wait_for(lambda: sum("refused" in a.message for a in active) >= 2, 20, "a second refusal")
        assert active[-1].version == 1  # the old weights keep running
    finally:
        proc.stop()
        probe.close()


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_learner_trains_online_persists_and_resumes(prior, tmp_path):
    demos = tmp_path / "demos"
    collect_demos("reach", episodes=2, noise=0.0, seed=0, root=demos, environment_state=True, max_steps=30)
    out = tmp_path / "learner"
    sets = ["mujoco_bridge.task=reach", f"policy.checkpoint={prior}", f"learner.checkpoint={prior}",
            f"learner.dataset={demos}", f"learner.output_dir={out}", "learner.poco.batch_size=16",
            "learner.poco.num_candidates=4", "learner.poco.warmup_updates=0", "learner.poco.critic_pretrain_updates=5",
            "learner.poco.critic_hidden=32", "episode_manager.max_steps=25", "learner.publish_every=10"]
    first = tmp_path / "first.jsonl"
    proc = bringup.start_graph("config/graphs/sim_poco.yaml", "learn_ci", sets + ["episode_manager.num_episodes=2",
                                                      f"episode_manager.results_path={first}"])
    assert proc.wait(timeout=240) == 0, proc.logs
    log = read_jsonl(out / "learner_log.jsonl")
    # policy_sync continuous (config/poco.yaml): an episode's updates (one per step) go out in versions of <= 10
    # updates, and the graph exits only once the last episode's are all done
    slices = [-(-r["steps"] // 10) for r in log]
    assert [r["version"] for r in log] == list(np.cumsum(slices)) and len(log) == 2
    assert all("critic_loss" in r for r in log), [line for line in proc.logs["learner"] if "stored" in line]  # every episode was stored and trained on
    assert all(np.isfinite(r["critic_loss"]) and 0.0 <= r["q_clip_ratio"] <= 1.0 for r in log)
    stored = load_episodes(out / "replay")
    episodes = read_jsonl(first)
    assert len(stored) == 2 == len(episodes)
    for ep, result in zip(stored, episodes):  # every action the driver executed became a transition
        assert len(ep.actions) == result["executed_steps"] - result["held_steps"] >= 24, (len(ep.actions), result)
        assert ep.states.shape[1] == STATE_DIM
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["version"] == log[-1]["version"] and (out / "checkpoint" / "critic.safetensors").exists()
    updates_before = log[-1]["updates"]

    proc = bringup.start_graph("config/graphs/sim_poco.yaml", "learn_ci", sets + ["episode_manager.num_episodes=1",
                                                      f"episode_manager.results_path={tmp_path / 'second.jsonl'}"])
    assert proc.wait(timeout=240) == 0, proc.logs
    log = read_jsonl(out / "learner_log.jsonl")
    assert log[-1]["version"] == log[-2]["version"] + -(-log[-1]["steps"] // 10)  # resumed, not from the prior
    assert log[-1]["updates"] == updates_before + log[-1]["steps"]
    assert len(load_episodes(out / "replay")) == 3


def test_human_takeover_is_learned_from_as_interventions(prior, tmp_path):
    """A human takes over mid-episode with the real teleop node (keyboard device layer fed by the test): the bridge
    executes the teleop chunks, `executed_action` says so, and the learner flags those steps, logs the intervention
    rate and keeps the human stretch a second time as a demonstration."""
    from robot_rl.nodes.teleop import TeleopNode
    from robot_rl.teleop import Keyboard, QueueKeys
    from node_harness import NodeInThread

    ns = "hil_ci"
    demos, out = tmp_path / "demos", tmp_path / "learner"
    collect_demos("reach", episodes=1, noise=0.0, seed=0, root=demos, environment_state=True, max_steps=20)
    proc = bringup.start_graph("config/graphs/sim_poco.yaml", ns, [
        "mujoco_bridge.task=reach", f"policy.checkpoint={prior}", f"learner.checkpoint={prior}",
        f"learner.dataset={demos}", f"learner.output_dir={out}", "learner.poco.batch_size=16",
        "learner.poco.num_candidates=2", "learner.poco.warmup_updates=0", "learner.poco.critic_pretrain_updates=2",
        "learner.poco.critic_hidden=32", "episode_manager.max_steps=200", "episode_manager.num_episodes=1",
        "learner.policy_sync=each_episode",
        f"episode_manager.results_path={tmp_path / 'episodes.jsonl'}"])
    keys = QueueKeys()
    probe = Probe("hil_probe", namespace=ns)
    running, teleop_steps = [], []
    probe.node.create_subscription(String, contract.EPISODE_STATUS.name,
                                   lambda m: running.append(records.decode(m.data, records.EpisodeStatus).state),
                                   contract.EPISODE_STATUS.qos)
    probe.node.create_subscription(contract.EXECUTED_ACTION.msg_type, contract.EXECUTED_ACTION.name,
                                   lambda m: teleop_steps.append(m) if m.header.frame_id == "teleop" else None,
                                   contract.LOSSLESS)
    teleop = NodeInThread(TeleopNode, {"hold_s": 60.0}, lambda cfg: ([Keyboard(keys, cfg.keys, cfg.hold_s)], []),
                          namespace=ns)
    try:
        wait_for(lambda: "running" in running, 120, "the episode to start")
        wait_for(lambda: teleop.node.running_episode is not None, 30, "the teleop node to see the running episode")
        keys.push("tw")  # take over, then +x until handed back
        wait_for(lambda: len(teleop_steps) >= 10, 60, "ten teleop steps executed")
        keys.push("t")  # hand back to the policy
        assert proc.wait(timeout=240) == 0, proc.logs
    finally:
        teleop.close()
        probe.close()
        proc.stop()
    (episode,) = load_episodes(out / "replay")
    human = episode.interventions
    assert human.sum() >= 10 and (~human).sum() >= 5, human.astype(int)
    np.testing.assert_allclose(episode.actions[human, 0], 1.0, atol=1e-5)  # +x at the full step (normalised)
    np.testing.assert_allclose(episode.actions[human, 1:6], 0.0, atol=1e-5)
    (row,) = read_jsonl(out / "learner_log.jsonl")
    assert row["intervention_rate"] == pytest.approx(human.mean())
    demo_steps = LeRobotReader(demos).num_frames
    assert row["store_steps"] == demo_steps + len(episode.actions) + human.sum()  # the human stretch, twice

