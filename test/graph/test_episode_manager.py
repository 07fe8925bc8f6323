"""The episode manager node against a stand-in arm whose first arm/reset answer does not come, as when Fast DDS drops
a service response (the server had not yet matched the client's response reader): the manager sends the reset again
after `service_retry_s`, the episode starts with the seed of the repeat, and the lost call's answer, when it comes
late, changes nothing."""
import json
import threading
import time

import pytest
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from node_harness import NodeInThread
from robot_rl.nodes.episode_manager import EpisodeManagerNode
from robot_rl.ros import contract, records
from robot_rl.ros.probe import Probe, wait_for

pytestmark = pytest.mark.graph
NS = "/episode_manager_test"
RETRY_S = 3.0  # long enough that a busy machine's slow (not lost) answer is rarely sent again
LOST_SEED = 99  # what the held first answer says: it must never reach the episode


class StandInArm:
    """arm/reset and arm/enable served from a thread pool. The first reset is held until `release` is set; every
    later one answers as the drivers do, with the seed of the episodes enabled so far (0 before the first)."""

    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("stand_in_arm", namespace=NS, context=self.context)
        group = ReentrantCallbackGroup()
        self.node.create_service(contract.ARM_RESET.srv_type, contract.ARM_RESET.name, self.on_reset,
                                 callback_group=group)
        self.node.create_service(contract.ARM_ENABLE.srv_type, contract.ARM_ENABLE.name, self.on_enable,
                                 callback_group=group)
        self.resets, self.enables = 0, []
        self.release, self.lost_answered = threading.Event(), threading.Event()
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def on_reset(self, _req, resp):
        self.resets += 1
        if self.resets == 1:
            self.release.wait(timeout=300)
            seed = LOST_SEED
            self.lost_answered.set()
        else:
            seed = self.enables.count(True)
        resp.success, resp.message = True, json.dumps({"seed": seed, "task": "stand_in", "stamp": time.time()})
        return resp

    def on_enable(self, req, resp):
        self.enables.append(bool(req.data))
        resp.success, resp.message = True, "ready" if req.data else "disabled"
        return resp

    def close(self):
        self.release.set()
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5)


def test_a_lost_reset_answer_is_sent_again_and_the_episode_starts_with_the_first_seed():
    arm = StandInArm()
    probe = Probe("episode_manager_probe")
    statuses = probe.collect(f"{NS}/{contract.EPISODE_STATUS.name}", records.EpisodeStatus,
                             contract.EPISODE_STATUS.qos)
    manager = None
    try:
        manager = NodeInThread(EpisodeManagerNode, {"service_retry_s": RETRY_S, "max_steps": 1_000_000},
                               namespace=NS)
        # without the retry the manager waits on the held call for good
        wait_for(lambda: any(s.state == "running" for s in statuses), 60, "episode/status running")
        running = next(s for s in statuses if s.state == "running")
        assert (running.seed, running.task) == (0, "stand_in"), running
        enables = list(arm.enables)  # [True], or [True, True] if a slow enable answer was sent again
        assert arm.resets >= 2 and enables and all(enables)
        arm.release.set()  # the lost call's answer goes out now, late
        assert arm.lost_answered.wait(10)
        time.sleep(2.0)  # room for it to act, were it taken: a second reset_done + enable
        assert arm.enables == enables
        assert [(s.state, s.seed) for s in statuses] == [("idle", None), ("resetting", None), ("running", 0)]
    finally:
        if manager is not None:
            manager.close()
        probe.close()
        arm.close()
