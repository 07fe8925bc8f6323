"""The scripted sim graph across processes over real DDS: episodes succeed, and the topics the running graph
reports (names, types, QoS) match the contract. Two robots run at once in two namespaces."""
import json

import pytest
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_rl import bringup
from robot_rl.ros import contract, records
from robot_rl.ros.probe import Probe, wait_for

pytestmark = pytest.mark.graph
EPISODES = 2
TASK_STEPS = {"reach": 150, "pick_lift": 300}
CAMERAS = ["front", "wrist"]


def start_graph(task: str, tmp_path) -> tuple[bringup.GraphProcess, object]:
    results = tmp_path / f"{task}.jsonl"
    proc = bringup.start_graph("config/graphs/sim_scripted.yaml", f"ci_{task}", [
        f"mujoco_bridge.task={task}", "mujoco_bridge.camera_width=64", "mujoco_bridge.camera_height=64",
        f"episode_manager.num_episodes={EPISODES}", f"episode_manager.max_steps={TASK_STEPS[task]}",
        f"episode_manager.results_path={results}", "episode_manager.autostart=false",
    ])
    return proc, results


def type_name(msg_type) -> str:
    module = msg_type.__module__.split(".")[0]
    return f"{module}/msg/{msg_type.__name__}"


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("graph")
    probe = Probe("graph_probe")
    statuses: dict[str, list] = {task: [] for task in TASK_STEPS}
    for task in TASK_STEPS:
        probe.node.create_subscription(
            String, f"/ci_{task}/{contract.EPISODE_STATUS.name}",
            lambda msg, t=task: statuses[t].append(records.decode(msg.data, records.EpisodeStatus)),
            contract.EPISODE_STATUS.qos)
    procs = {task: start_graph(task, tmp) for task in TASK_STEPS}
    topology = {}
    try:
        ns = "/ci_reach"
        wanted = [t for t in contract.driver_topics(CAMERAS)] + [contract.ACTION_CHUNK, contract.REWARD,
                                                                 contract.EPISODE_STATUS]

        def all_published():
            infos = {t.name: probe.node.get_publishers_info_by_topic(f"{ns}/{t.name}") for t in wanted}
            return infos if all(infos.values()) else None

        topology = wait_for(all_published, 60, "every contract topic to have a publisher")
        for task in TASK_STEPS:  # the operator's start button: one call runs all episodes
            assert probe.call(Trigger, f"/ci_{task}/episode/start", Trigger.Request()).success
        codes = {task: proc.wait(timeout=420) for task, (proc, _) in procs.items()}
        yield {"codes": codes, "statuses": statuses, "topology": topology, "wanted": wanted,
               "results": {task: [json.loads(line) for line in path.read_text().splitlines()]
                           for task, (_, path) in procs.items()},
               "logs": {task: proc.logs for task, (proc, _) in procs.items()}}
    finally:
        for proc, _ in procs.values():
            proc.stop()
        probe.close()


def test_graphs_finish_cleanly(graph_run):
    assert graph_run["codes"] == {task: 0 for task in TASK_STEPS}, graph_run["logs"]


@pytest.mark.parametrize("task", sorted(TASK_STEPS))
def test_scripted_episodes_succeed_in_the_status_records(graph_run, task):
    ended = [s for s in graph_run["statuses"][task] if s.state == "ended"]
    assert [s.episode for s in ended] == list(range(EPISODES))
    assert all(s.outcome == "success" for s in ended), [(s.outcome, s.reason) for s in ended]
    assert all(s.task == task and s.steps > 0 for s in ended)
    assert len({s.seed for s in ended}) == EPISODES  # each reset is a new seeded scene
    assert [r["outcome"] for r in graph_run["results"][task]] == ["success"] * EPISODES


def test_topics_match_the_contract_as_the_ros_graph_reports_them(graph_run):
    topology = graph_run["topology"]
    for topic in graph_run["wanted"]:
        infos = topology[topic.name]
        for info in infos:
            assert info.topic_type == type_name(topic.msg_type), topic.name
            assert info.qos_profile.reliability == topic.qos.reliability, topic.name
            assert info.qos_profile.durability == topic.qos.durability, topic.name
    assert topology[contract.camera_image("front").name][0].qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    assert topology[contract.EPISODE_STATUS.name][0].qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
