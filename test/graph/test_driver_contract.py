"""One contract, two drivers: the MuJoCo bridge and the Franka arm node (on franky-sim) must behave the same to the
rest of the graph, so these tests run unchanged against both. Topics and their types, the services and the arm/reset
answer (a repeated reset keeps its seed), joint- and EE-space chunks, rejections counted in arm/status, chunks refused
unless ready, e-stop + recover."""
import json
import time

import numpy as np
import pytest
from std_srvs.srv import SetBool, Trigger

from driver_harness import franky_sim_server, start_arm, start_bridge
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES
from robot_rl.ros import contract

pytestmark = pytest.mark.graph


@pytest.fixture(scope="module", params=["mujoco_bridge", "arm"])
def driver(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    ns = f"/contract_{request.param}"
    if request.param == "mujoco_bridge":
        d = start_bridge(ns, tmp)
        try:
            yield d
        finally:
            d.close()
        return
    with franky_sim_server(tmp) as server:
        d = start_arm(ns, server.address, tmp)
        try:
            yield d
        finally:
            d.close()



def test_topics_services_and_reset_answer(driver):
    assert driver.joint_names == list(JOINT_SPACE_NAMES)
    driver.wait(lambda: driver.ee_position is not None and driver.status is not None, 10, "ee_pose and arm/status")
    assert driver.ee_frame == "panda_link0"
    for topic in (contract.JOINT_STATES, contract.EE_POSE, contract.EXECUTED_ACTION, contract.ARM_STATUS):
        name = f"{driver.ns}/{topic.name}"
        driver.wait(lambda: name in dict(driver.probe.node.get_topic_names_and_types()), 5, name)
        graph = dict(driver.probe.node.get_topic_names_and_types())
        assert graph[name] == [f"{topic.msg_type.__module__.split('.')[0]}/msg/{topic.msg_type.__name__}"]
    services = dict(driver.probe.node.get_service_names_and_types())
    for service in contract.ARM_SERVICES:
        assert f"{driver.ns}/{service.name}" in services
    resp = driver.call(Trigger, "arm/reset", Trigger.Request())
    assert resp.success, resp.message
    answer = json.loads(resp.message)
    assert set(answer) == {"seed", "task", "stamp"}


def test_a_reset_repeated_before_the_arm_is_enabled_keeps_its_seed(driver):
    """The episode manager sends arm/reset again when its answer is lost: the repeat must not start another scene."""
    def reset() -> dict:
        resp = driver.call(Trigger, "arm/reset", Trigger.Request())
        assert resp.success, resp.message
        return json.loads(resp.message)

    assert driver.call(SetBool, "arm/enable", SetBool.Request(data=False)).success
    first, repeat = reset(), reset()
    assert (repeat["seed"], repeat["task"]) == (first["seed"], first["task"])
    assert repeat["stamp"] >= first["stamp"]
    driver.enable()
    assert driver.call(SetBool, "arm/enable", SetBool.Request(data=False)).success
    assert reset()["seed"] == first["seed"] + 1  # enabled since: a new episode's reset


def test_chunks_are_refused_unless_ready(driver):
    assert driver.call(SetBool, "arm/enable", SetBool.Request(data=False)).success
    driver.wait_state("disabled")
    before = driver.rejected("not_ready")
    driver.send(EE_SPACE_NAMES, [[0.0, 0.0, 0.01, 0, 0, 0, 0.04]] * 3)
    driver.wait(lambda: driver.rejected("not_ready") > before, 5, "a not_ready rejection")


def test_joint_space_chunk_is_tracked(driver):
    driver.enable()
    time.sleep(0.3)
    path, target = [], driver.joints.copy()
    for _ in range(6):  # +0.05 rad per step on joints 1 and 4
        target = target + np.r_[0.05, 0, 0, 0.05, 0, 0, 0, 0]
        path.append(target)
    driver.send(JOINT_SPACE_NAMES, path)
    final = path[-1]
    driver.wait(lambda: np.abs(driver.joints[:7] - final[:7]).max() < driver.joint_tolerance, 10,
             "the arm to track the joint chunk")
    assert any(c.names == JOINT_SPACE_NAMES and c.source == "policy" for c in driver.executed)


def test_ee_space_chunk_after_a_joint_chunk_moves_the_tcp_from_where_it_is(driver):
    driver.enable()
    time.sleep(0.3)
    start = driver.ee_position.copy()
    driver.send(EE_SPACE_NAMES, [[0.0, 0.0, -0.01, 0, 0, 0, 0.04]] * 6)  # 6 cm down in 0.4 s
    driver.wait(lambda: start[2] - driver.ee_position[2] > 0.04, 10, "the TCP to descend")
    time.sleep(0.5)
    moved = driver.ee_position - start
    # 5 or 6 cm: when the chunk lands late in a control period, the executor may skip its first (already due) point
    assert 0.04 < -moved[2] < 0.07 and np.abs(moved[:2]).max() < 0.01, moved
    assert any(c.names == EE_SPACE_NAMES and c.source == "policy" for c in driver.executed)


@pytest.mark.parametrize(
    "names, points, reason",
    [
        (JOINT_SPACE_NAMES, [[np.nan] * 8], "non_finite"),
        (EE_SPACE_NAMES, [[np.inf, 0, 0, 0, 0, 0, 0.04]], "non_finite"),
        ([f"joint{i}" for i in range(8)], [[0.0] * 8], "wrong_names"),
        (EE_SPACE_NAMES, [[0.2, 0, 0, 0, 0, 0, 0.04]], "jump"),
        (EE_SPACE_NAMES, [[0, 0, 0, 0, 0, 0, 0.5]], "gripper_range"),
    ],
)
def test_bad_chunks_are_rejected_and_reported(driver, names, points, reason):
    driver.enable()
    before_joints = driver.joints.copy()
    before = driver.rejected(reason)
    driver.send(names, points)
    driver.wait(lambda: driver.rejected(reason) > before, 10, f"a {reason} rejection in arm/status")
    assert reason in driver.status.last_rejection
    assert np.abs(driver.joints[:7] - before_joints[:7]).max() < 0.01


def test_stale_chunk_is_rejected(driver):
    driver.enable()
    before = driver.rejected("stale")
    driver.send(EE_SPACE_NAMES, np.zeros((3, 7)), stamp=driver.stamp - 10.0)
    driver.wait(lambda: driver.rejected("stale") > before, 10, "a stale rejection")


def test_estop_holds_position_and_recover_resumes(driver):
    driver.enable()
    driver.send(EE_SPACE_NAMES, [[0.0, 0.0, 0.005, 0, 0, 0, 0.04]] * 30)  # a long slow rise
    time.sleep(0.5)
    assert driver.call(Trigger, "arm/stop", Trigger.Request()).success
    at_stop = driver.ee_position.copy()
    driver.wait_state("estop", 5)
    time.sleep(0.3)  # let the arm settle at the frozen reference
    held = driver.joints.copy()
    time.sleep(1.0)
    assert np.abs(driver.joints[:7] - held[:7]).max() < 0.01, "arm moved during e-stop"
    assert np.linalg.norm(driver.ee_position - at_stop) < 0.01, "the TCP ran on after the e-stop"
    before = driver.rejected("not_ready")
    driver.send(EE_SPACE_NAMES, [[0.0, 0.0, 0.01, 0, 0, 0, 0.04]] * 5)
    driver.wait(lambda: driver.rejected("not_ready") > before, 5, "chunk refused during e-stop")
    assert not driver.call(SetBool, "arm/enable", SetBool.Request(data=True)).success
    assert driver.call(Trigger, "arm/recover", Trigger.Request()).success
    driver.enable()
    start = driver.joints.copy()
    driver.send(EE_SPACE_NAMES, [[0.004, 0.0, 0.0, 0, 0, 0, 0.04]] * 25)  # long: some points stay due on a slow host
    driver.wait(lambda: np.abs(driver.joints[:7] - start[:7]).max() > 0.02, 10, "motion after recover")
