"""Recorder: `robot-rl record` over the live sim graph (mujoco_bridge + scripted policy + reward + episode_manager
+ teleop + recorder, real processes over DDS) writes a LeRobot v3 dataset the reader reads back with video frames ==
parquet rows; a recorder killed mid-episode leaves the earlier episodes readable; `recorder/discard` drops one."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_rl import bringup
from robot_rl.core.types import EE_SPACE_NAMES, ActionChunk
from robot_rl.core.state import STATE_NAMES
from robot_rl.data.lerobot import LeRobotReader, LeRobotWriter
from robot_rl.ros import convert, records
from robot_rl.ros.probe import Probe, wait_for
from dataset_checks import FPS, SMALL, check_dataset

pytestmark = pytest.mark.graph
def test_record_cli_writes_a_readable_dataset(tmp_path: Path):
    root, results = tmp_path / "ds", tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "robot_rl.commands", "record", "--root", str(root), "--episodes", "2", "--task", "reach",
           "--timeout", "120", "--set", f"episode_manager.results_path={results}", "--set", "recorder.bag=true"]
    for item in SMALL:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, env=bringup.ros_environment(), capture_output=True, text=True, timeout=180,
                          cwd=bringup.PACKAGE_ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "2 episodes" in proc.stdout and "episode 1:" in proc.stdout
    try:
        reader = check_dataset(root)
    except AssertionError as err:  # the recorder's per-episode counters say what was missing
        raise AssertionError(f"{err}\n{proc.stdout[-3000:]}") from None
    assert reader.num_episodes == 2
    # the per-episode progress lines map the episode manager's episodes to dataset episodes and name the outcome
    saved = re.findall(r"episode (\d+) -> dataset episode (\d+): (\d+) frames \(.*outcome (\w+)", proc.stdout)
    assert [int(d) for _, d, _, _ in saved] == [0, 1], proc.stdout[-4000:]
    outcomes = {json.loads(line)["episode"]: json.loads(line)["outcome"] for line in results.read_text().splitlines()}
    for (episode, index, frames, outcome), meta in zip(saved, reader.episodes):
        assert outcomes[int(episode)] == outcome and int(frames) == meta["length"]
        assert meta["success"] == {"success": True, "failure": False, "timeout": False}.get(outcome)
    assert reader.tasks == ["reach"]
    # the raw-topic rosbag2 bag: rosbags opens it, every recorded topic with its publishers' offered QoS (the latched
    # status stays latched on replay), CDR payloads that deserialize with rclpy
    from rclpy.serialization import deserialize_message
    from rosbags.interfaces import QosDurability
    from rosbags.rosbag2 import Reader
    from sensor_msgs.msg import JointState

    (bag,) = (root / "bags").iterdir()
    with Reader(bag) as bag_reader:
        conns = {c.topic: c for c in bag_reader.connections}
        counts = {topic: conn.msgcount for topic, conn in conns.items()}
        joints = [deserialize_message(raw, JointState)
                  for _, _, raw in bag_reader.messages([conns["/robot1/joint_states"]])]
    assert len(joints) == counts["/robot1/joint_states"] >= reader.num_frames
    assert counts["/robot1/cameras/front/image_raw"] > 0
    assert counts["/robot1/executed_action"] >= reader.num_frames and counts["/robot1/episode/status"] >= 6
    assert len(joints[-1].position) == 8
    status_qos = conns["/robot1/episode/status"].ext.offered_qos_profiles
    assert status_qos and all(q.durability == QosDurability.TRANSIENT_LOCAL for q in status_qos)


def test_killed_recorder_keeps_earlier_episodes_and_discard_drops_one(tmp_path: Path):
    root = tmp_path / "ds"
    graph = bringup.prepare("config/graphs/sim_record.yaml", "rec_kill", SMALL + [
        f"recorder.root={root}", "recorder.num_episodes=0", "episode_manager.num_episodes=0"])
    proc = bringup.GraphProcess(graph, quiet=True)
    probe = Probe("recorder_probe")
    proc.start()
    info = root / "meta" / "info.json"

    def saved() -> int:
        return json.loads(info.read_text())["total_episodes"] if info.exists() else 0

    try:
        wait_for(lambda: saved() >= 1, 90, "a first saved episode")
        first = saved()
        reply = wait_for(lambda: (r := probe.call(Trigger, "/rec_kill/recorder/discard", Trigger.Request())).success
                         and r, 30, "an episode running to discard")
        assert "discarded" in reply.message
        wait_for(lambda: any("discarded (re-record)" in line for line in proc.logs["recorder"]), 30,
                 "the discarded episode to end")
        wait_for(lambda: saved() >= first + 1, 60, "one more saved episode")
        # kill the recorder while an episode is being encoded
        wait_for(lambda: list(root.rglob("*.partial.mp4")), 30, "an episode in progress")
        before = saved()
        os.killpg(proc.procs["recorder"].pid, signal.SIGKILL)
        proc.procs["recorder"].wait(timeout=10)
    finally:
        proc.stop()
        probe.close()
    ended = [line for line in proc.logs["recorder"] if "-> dataset episode" in line]
    assert len(ended) == before >= 2, proc.logs["recorder"][-20:]
    assert "frames (" in ended[0]   # the per-episode progress line
    reader = check_dataset(root)
    assert reader.num_episodes == before
    # a writer reopening the root removes the killed episode's leftovers and appends after the saved ones
    writer = LeRobotWriter(root, FPS, STATE_NAMES, EE_SPACE_NAMES, ["front"], (48, 48, 3), robot_type="panda")
    assert writer.num_episodes == before and not list(root.rglob("*.partial.mp4"))
    writer.finalize()


class RecorderCalls:
    """A real RecorderNode in its own context whose callbacks the test calls directly, in the order it chooses (no
    executor), with the messages the graph would send."""

    def __init__(self, root: Path, **params):
        from rclpy.parameter import Parameter

        from robot_rl.nodes.recorder import RecorderNode

        self.context = Context()
        rclpy.init(context=self.context)
        overrides = [Parameter(k, value=v) for k, v in {"root": str(root), **params}.items()]
        self.node = RecorderNode(context=self.context, parameter_overrides=overrides)
        self.accountings: list[dict] = []
        self.node.publish_status = lambda state, accounting: self.accountings.append(accounting)

    def status(self, episode: int, state: str, stamp: float, **fields) -> None:
        self.node.on_status(String(data=records.encode(records.EpisodeStatus(
            stamp=stamp, episode=episode, state=state, task="reach", **fields))))

    def states(self, t: float) -> None:
        self.node.on_pose(convert.pose_msg((0.4, 0.0, 0.3 + t / 100), (1.0, 0.0, 0.0, 0.0), t, "base"))
        self.node.on_joints(convert.joint_state_msg([f"j{i}" for i in range(8)], [0.1] * 7 + [0.04], [0.0] * 8, t))

    def step(self, episode: int, t: float, k: int, reward: bool = True) -> None:
        """The state at tick t, the action executed there and its reward record one period later."""
        self.states(t)
        self.node.on_executed(convert.chunk_to_msg(ActionChunk(t, 1.0 / FPS, EE_SPACE_NAMES, np.full((1, 7), 0.001))))
        if reward:
            self.node.on_reward(String(data=records.encode(records.RewardRecord(
                stamp=t + 1.0 / FPS, episode=episode, step=k, reward=-0.01 * k, source="sim"))))

    def close(self) -> None:
        """Waits for the writer; then reports the saves it ended."""
        self.node.close()
        self.node.on_timer()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def test_an_episode_that_begins_while_the_last_one_still_ends_waits_for_its_data(tmp_path: Path):
    """The episode manager's next `running` reaches the recorder before the last states, actions and rewards of the
    episode that ended (every topic is its own queue; under load the recorder's lag behind them grows): the ended
    episode still gets all its frames, the next one all of its own."""
    dt, steps = 1.0 / FPS, 12
    rec = RecorderCalls(tmp_path / "ds")
    starts = (10.0, 10.0 + (steps + 5) * dt)
    try:
        rec.status(0, "running", starts[0])
        for k in range(steps - 4):
            rec.step(0, starts[0] + k * dt, k)
        rec.status(0, "ended", starts[0] + steps * dt, outcome="timeout", executed_steps=steps, held_steps=0)
        rec.status(1, "running", starts[1])             # before episode 0's last four ticks have been read
        for k in range(steps - 4, steps):
            rec.step(0, starts[0] + k * dt, k)
        rec.states(starts[0] + steps * dt)              # the state at episode 0's end
        rec.node.on_timer()
        for k in range(steps):
            rec.step(1, starts[1] + k * dt, k)
        rec.status(1, "ended", starts[1] + steps * dt, outcome="timeout", executed_steps=steps, held_steps=0)
        rec.states(starts[1] + steps * dt)
        rec.node.on_timer()
        assert rec.node.episode is None   # both taken
    finally:
        rec.close()
    reader = LeRobotReader(tmp_path / "ds")
    assert [meta["length"] for meta in reader.episodes] == [steps, steps]
    for i in range(2):
        assert reader.episode(i)["reward"] == pytest.approx([-0.01 * k for k in range(steps)])
    assert [(a["kept"], a["cause"]) for a in rec.accountings] == [(steps, ""), (steps, "")]


def test_an_episode_taken_at_the_end_time_out_says_so_in_its_accounting(tmp_path: Path):
    """The reward records of an episode's last ticks never come (a reward node that stopped): after end_timeout_s the
    episode is saved with what came, and its accounting names the time-out beside the frames without a reward."""
    dt, steps = 1.0 / FPS, 8
    rec = RecorderCalls(tmp_path / "ds", end_timeout_s=0.2)
    try:
        rec.status(0, "running", 10.0)
        for k in range(steps):
            rec.step(0, 10.0 + k * dt, k, reward=k < steps - 2)
        rec.status(0, "ended", 10.0 + steps * dt, outcome="timeout", executed_steps=steps, held_steps=0)
        rec.states(10.0 + steps * dt)
        rec.node.on_timer()
        assert rec.node.episode == 0   # still waiting for the last rewards
        time.sleep(0.3)
        rec.node.on_timer()
        assert rec.node.episode is None
    finally:
        rec.close()
    [accounting] = rec.accountings
    assert accounting["kept"] == steps and accounting["rewards_lost"] == 2
    assert accounting["cause"] == "2 kept without their reward record (taken at end_timeout_s (0.2 s))"
