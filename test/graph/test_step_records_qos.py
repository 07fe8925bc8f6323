"""The per-step records that the learner and the recorder keep every one of (executed actions, rewards): a reader that
matches the writer only after an episode has started (discovery on a busy host) still gets its first records."""
import numpy as np
import pytest
from std_msgs.msg import String

from robot_rl.core.types import EE_SPACE_NAMES, ActionChunk
from robot_rl.ros import contract, convert, records
from robot_rl.ros.probe import Probe, wait_for

pytestmark = pytest.mark.graph


def test_a_reader_matched_after_the_episode_started_gets_its_first_steps():
    writer = Probe("step_writer")
    reader = None
    try:
        pub_action = contract.publisher(writer.node, contract.EXECUTED_ACTION)
        pub_reward = contract.publisher(writer.node, contract.REWARD)
        steps = 40
        for k in range(steps):   # an episode's first steps, before any reader exists
            stamp = 1.0 + k / 15
            pub_action.publish(convert.chunk_to_msg(ActionChunk(stamp, 1 / 15, EE_SPACE_NAMES, np.zeros((1, 7)))))
            pub_reward.publish(String(data=records.encode(records.RewardRecord(
                stamp=stamp, episode=0, step=k, reward=-0.01, success=False, source="sim"))))
        reader = Probe("step_reader")
        actions, rewards = [], []
        # the readers' QoS of the learner (robot_rl/nodes/robot_feed.py) and the recorder
        contract.subscribe(reader.node, contract.EXECUTED_ACTION, actions.append, contract.RECORDS_DEEP)
        contract.subscribe(reader.node, contract.REWARD, rewards.append, contract.RECORDS_DEEP)
        try:
            wait_for(lambda: len(actions) == steps and len(rewards) == steps, 20, f"{steps} actions and rewards")
        except AssertionError as err:
            raise AssertionError(f"{err}: got {len(actions)} actions, {len(rewards)} rewards") from None
        stamps = [convert.from_time(m.header.stamp) for m in actions]
        np.testing.assert_allclose(stamps, 1.0 + np.arange(steps) / 15, atol=1e-6)
    finally:
        if reader is not None:
            reader.close()
        writer.close()
