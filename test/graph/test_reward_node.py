"""The reward node's guard on its per-episode setup, with the node in-process and a stand-in source whose first setup
never finishes (as a stuck DEG guidance worker would): the episode gets no rewards, reward/status names why, and
the next episode is scored by a fresh worker."""
import threading

from std_msgs.msg import String

from node_harness import NodeInThread
from robot_rl.nodes.reward import RewardNode
from robot_rl.rewards.sources import RewardSource, RewardStep
from robot_rl.ros import contract, records
from robot_rl.ros.probe import Probe, wait_for

PERIOD = 0.05


class FirstSetupHangs(RewardSource):
    """Stand-in: the first episode's setup blocks until released; later setups return at once; every step pays 1."""

    name = "first_setup_hangs"

    def __init__(self):
        self.setups = 0
        self.release = threading.Event()

    def prepare(self, first, task):
        self.setups += 1
        if self.setups == 1:
            self.release.wait(120)

    def step(self, obs):
        return RewardStep(1.0, {"paid": 1.0}, False, False)


def test_a_setup_that_never_finishes_costs_one_episode_its_rewards_and_says_so():
    ns = "reward_setup_guard"
    source = FirstSetupHangs()
    node = NodeInThread(RewardNode, {"setup_timeout_s": 1.0}, namespace=ns, source_factory=lambda cfg: source)
    probe = Probe("reward_setup_probe", namespace=ns)
    rewards = probe.collect(f"/{ns}/{contract.REWARD.name}", records.RewardRecord, contract.RECORDS_DEEP)
    statuses = probe.collect(f"/{ns}/{contract.REWARD_STATUS.name}", records.RewardStatus, contract.REWARD_STATUS.qos)
    pub_status = probe.node.create_publisher(String, contract.EPISODE_STATUS.name, contract.EPISODE_STATUS.qos)
    pub_task = probe.node.create_publisher(String, contract.TASK_STATE.name, contract.TASK_STATE.qos)

    def episode_status(episode, state, stamp, **kw):
        pub_status.publish(String(data=records.encode(records.EpisodeStatus(stamp=stamp, episode=episode, state=state,
                                                                            task="reach", **kw))))

    def ticks(start, n):
        for k in range(n):
            pub_task.publish(String(data=records.encode(records.TaskState(stamp=round(start + k * PERIOD, 3),
                                                                          task="reach", success=False, state={}))))

    try:
        wait_for(lambda: pub_status.get_subscription_count() and pub_task.get_subscription_count(), 30,
                 "the reward node's subscriptions")
        episode_status(0, "running", 0.0)
        ticks(0.0, 20)
        episode_status(0, "ended", 1.0, outcome="timeout", executed_steps=20)
        # an input after the end settles the tally; the guard fires a second after the setup began
        wait_for(lambda: ticks(1.05, 1) or statuses, 30, "reward/status of the episode whose setup hung", interval=0.5)
        (status,) = statuses
        assert status.accounting.episode == 0 and status.accounting.kept == 0, status
        assert "setup_failed: not ready after 1 s" in status.accounting.cause, status
        assert not rewards

        episode_status(1, "running", 2.0)
        ticks(2.0, 20)
        wait_for(lambda: len(rewards) >= 20, 30, "the next episode's 20 reward records")
        assert {r.episode for r in rewards} == {1} and [r.step for r in rewards] == list(range(len(rewards)))
        assert source.setups == 2
    finally:
        source.release.set()
        probe.close()
        node.close()


class PaysOne(RewardSource):
    name = "pays_one"

    def prepare(self, first, task):
        pass

    def step(self, obs):
        return RewardStep(1.0, {"paid": 1.0}, False, False)


def test_an_episode_whose_next_status_overtakes_its_last_inputs_still_scores_them():
    """Under load the next episode's `running` status can arrive before the last inputs of the episode that ended
    (another topic): those inputs are scored for their own episode, in order, before the next one begins."""
    ns = "reward_status_overtakes"
    node = NodeInThread(RewardNode, {}, namespace=ns, source_factory=lambda cfg: PaysOne())
    probe = Probe("reward_overtake_probe", namespace=ns)
    rewards = probe.collect(f"/{ns}/{contract.REWARD.name}", records.RewardRecord, contract.RECORDS_DEEP)
    statuses = probe.collect(f"/{ns}/{contract.REWARD_STATUS.name}", records.RewardStatus, contract.REWARD_STATUS.qos)
    pub_status = probe.node.create_publisher(String, contract.EPISODE_STATUS.name, contract.EPISODE_STATUS.qos)
    pub_task = probe.node.create_publisher(String, contract.TASK_STATE.name, contract.TASK_STATE.qos)
    received: list[records.EpisodeStatus] = []
    node.node.create_subscription(String, contract.EPISODE_STATUS.name,
                                  lambda msg: received.append(records.decode(msg.data, records.EpisodeStatus)),
                                  contract.EPISODE_STATUS.qos)

    def episode_status(episode, state, stamp, **kw):
        pub_status.publish(String(data=records.encode(records.EpisodeStatus(stamp=stamp, episode=episode, state=state,
                                                                            task="reach", **kw))))

    def ticks(first, last):
        for k in range(first, last + 1):
            pub_task.publish(String(data=records.encode(records.TaskState(stamp=round(k * PERIOD, 3), task="reach",
                                                                          success=False, state={}))))

    try:
        wait_for(lambda: pub_status.get_subscription_count() >= 2 and pub_task.get_subscription_count(), 30,
                 "the reward node's subscriptions")
        episode_status(0, "running", 0.0)
        ticks(0, 14)
        wait_for(lambda: len(rewards) >= 15, 30, "episode 0's first 15 records")
        # episode 0 ends at tick 20 and episode 1 starts at tick 21 before the inputs of ticks 15-20 have come
        episode_status(0, "ended", 20 * PERIOD, outcome="timeout", executed_steps=20)
        episode_status(1, "running", 21 * PERIOD)
        wait_for(lambda: len(received) >= 3, 30, "the statuses at the node, before the late inputs")
        ticks(15, 40)
        wait_for(lambda: len(rewards) >= 41 and statuses, 30, "the records of both episodes and episode 0's status")
        assert [(r.episode, r.step) for r in rewards] == [(0, k) for k in range(21)] + [(1, k) for k in range(20)]
        (status,) = statuses
        assert status.accounting.episode == 0 and status.accounting.kept == 21 and not status.accounting.cause, status
    finally:
        probe.close()
        node.close()
