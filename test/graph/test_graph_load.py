"""Nothing lost under load: the recording graph (bridge, scripted policy, reward, episode manager, teleop, recorder as
real processes over DDS) records two episodes while four busy processes compete for the CPU, and every node's
per-episode accounting says it kept every step the arm executed: frames = executed steps = reward records."""
from __future__ import annotations

import pytest

from bench.load import busy_workers
from robot_rl import bringup
from robot_rl.data.lerobot import LeRobotReader
from robot_rl.ros import contract, records
from robot_rl.ros.probe import Probe, wait_for
from dataset_checks import SMALL

pytestmark = pytest.mark.graph
EPISODES = 2


def test_recording_under_cpu_load_loses_no_frame_and_no_reward(tmp_path):
    ns, root = "load_ci", tmp_path / "ds"
    sets = SMALL + ["mujoco_bridge.task=reach", "episode_manager.max_steps=25", f"recorder.root={root}",
                    "recorder.num_episodes=0", f"episode_manager.num_episodes={EPISODES}",
                    "episode_manager.exit_when_done=false"]
    probe = Probe("load_probe")
    statuses = probe.collect(f"/{ns}/{contract.EPISODE_STATUS.name}", records.EpisodeStatus,
                             contract.EPISODE_STATUS.qos)
    rewards = probe.collect(f"/{ns}/{contract.REWARD_STATUS.name}", records.RewardStatus, contract.REWARD_STATUS.qos)
    frames = probe.collect(f"/{ns}/{contract.RECORDER_STATUS.name}", records.RecorderStatus,
                           contract.RECORDER_STATUS.qos)
    with busy_workers(4, max_s=400):
        proc = bringup.start_graph("config/graphs/sim_record.yaml", ns, sets)
        try:
            wait_for(lambda: len(frames) >= EPISODES and len(rewards) >= EPISODES, 300,
                     "both episodes' accounting from the recorder and the reward node")
        except AssertionError as err:
            raise AssertionError(f"{err}\n" + "\n".join(proc.logs["recorder"][-15:] + proc.logs["reward"][-5:]))
        finally:
            proc.stop()
            probe.close()
    ended = {s.episode: s for s in statuses if s.state == "ended"}
    for recorded, scored in zip(frames, rewards):
        episode = ended[recorded.accounting.episode]
        executed = episode.executed_steps
        assert executed and executed >= 20, episode    # the driver's own count of the ticks it executed
        rec, rew = recorded.accounting, scored.accounting
        assert recorded.state == "saved" and rec.expected == executed, recorded
        assert (rec.lost, rec.rewards_lost, rec.cause) == (0, 0, ""), recorded     # every frame, with its reward
        assert rec.kept + sum(rec.excluded.values()) == executed
        assert rew.episode == rec.episode and rew.expected == executed, scored
        assert rew.dropped == {} and rew.lost <= 0 and rew.cause == "", scored      # a record for every step
    lengths = [meta["length"] for meta in LeRobotReader(root).episodes]
    assert lengths == [f.accounting.kept for f in frames]
