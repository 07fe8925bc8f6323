"""The Franka arm node as a process, driving franky-sim (a MuJoCo FR3 speaking the libfranka protocol) through the real
franky library over loopback: state rate, gripper, reset to home, a lost link reported + retried + recovered, and
configuration errors. The behaviour it shares with the MuJoCo bridge is in test_driver_contract.py."""
import time

import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger

from driver_harness import franky_sim_server, start_arm
from robot_rl import bringup
from robot_rl.configs.arm import READY_POSE
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES
from robot_rl.hardware.franky_sim import free_loopback_address
from robot_rl.ros import contract, convert
from robot_rl.ros.probe import wait_for

pytestmark = pytest.mark.graph
NS = "/arm_test"


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("arm")
    with franky_sim_server(tmp) as server:
        driver = start_arm(NS, server.address, tmp)
        try:
            yield driver, server
        finally:
            driver.close()


def test_joint_states_at_100_hz_or_more(arm):
    driver, _ = arm
    assert driver.joint_names == list(JOINT_SPACE_NAMES)
    # the node's publishing period, from its own stamps: a test process starved by other load receives them late (and
    # the writer's keep-last history may skip some), but most consecutive ones it gets are one period apart
    stamps = []
    sub = driver.probe.node.create_subscription(JointState, f"{driver.ns}/{contract.JOINT_STATES.name}",
                                                lambda m: stamps.append(convert.from_time(m.header.stamp)),
                                                contract.LOSSLESS)
    try:
        wait_for(lambda: len(stamps) >= 200, 30, "200 joint states")
    finally:
        driver.probe.node.destroy_subscription(sub)
    rate = 1.0 / float(np.median(np.diff(stamps)))
    assert rate >= 100.0, f"joint_states at {rate:.0f} Hz"


def test_reset_ramps_to_home_and_leaves_the_robot_idle(arm):
    driver, _ = arm
    resp = driver.call(Trigger, "arm/reset", Trigger.Request())
    assert resp.success, resp.message
    assert np.abs(driver.joints[:7] - np.asarray(READY_POSE)).max() < 0.05
    driver.wait_state("disabled")  # the robot is idle again after a reset while disabled


def test_gripper_follows_width_commands(arm):
    driver, _ = arm
    assert driver.call(SetBool, "arm/enable", SetBool.Request(data=True)).success
    for width in (0.02, 0.0, 0.06):  # a move, a force grasp (below gripper_grasp_below_m), a move
        driver.send(EE_SPACE_NAMES, [[0, 0, 0, 0, 0, 0, width]] * 10)
        driver.wait(lambda: abs(driver.joints[7] - width) < 0.004, 10, f"gripper width {width}")


def test_lost_link_is_reported_retried_and_recovered(arm):
    driver, server = arm
    assert driver.call(SetBool, "arm/enable", SetBool.Request(data=True)).success
    driver.wait_state("ready")
    server.pause()  # the link dies mid-control, as with a pulled cable
    time.sleep(1.5)
    server.resume()
    driver.wait_state("error", 10)
    assert "connection lost" in driver.status.message
    driver.wait(lambda: "reconnected" in driver.status.message, 15, "the node to reconnect by itself")
    before = driver.rejected("not_ready")
    held = driver.joints.copy()
    driver.send(EE_SPACE_NAMES, [[0.0, 0.0, -0.01, 0, 0, 0, 0.06]] * 10)
    driver.wait(lambda: driver.rejected("not_ready") > before, 5, "chunk refused while in error")
    assert not driver.call(SetBool, "arm/enable", SetBool.Request(data=True)).success
    time.sleep(0.5)
    assert np.abs(driver.joints[:7] - held[:7]).max() < 0.01, "the arm moved while in error"
    assert driver.call(Trigger, "arm/recover", Trigger.Request()).success
    driver.wait_state("ready")
    start = driver.ee_position.copy()
    driver.send(EE_SPACE_NAMES, [[0.0, 0.0, -0.01, 0, 0, 0, 0.06]] * 6)
    driver.wait(lambda: start[2] - driver.ee_position[2] > 0.03, 10, "motion after recover")


def test_starts_without_a_robot_and_connects_once_it_appears(tmp_path):
    address = free_loopback_address()
    driver = start_arm("/arm_test_late", address, tmp_path, wait_for_state=False)
    try:
        driver.wait_state("error", 10)
        assert "cannot connect" in driver.status.message
        assert not driver.call(SetBool, "arm/enable", SetBool.Request(data=True)).success
        assert not driver.call(Trigger, "arm/recover", Trigger.Request()).success
        assert driver.joints is None  # nothing is published without a robot
        with franky_sim_server(tmp_path, address):
            driver.wait(lambda: "reconnected" in driver.status.message, 20, "the node to connect by itself")
            assert driver.call(Trigger, "arm/recover", Trigger.Request()).success
            driver.wait_state("disabled")
            driver.wait(lambda: driver.joints is not None, 5, "joint_states once connected")
    finally:
        driver.close()


@pytest.mark.parametrize("override, named", [
    ("arm.robot.realtime=sometimes", "robot.realtime"),
    ("arm.robot.home=[0.0, 0.0]", "home needs 7 values"),
    ("arm.state_hz=50.0", "state_hz"),
])
def test_bad_parameters_are_named_before_anything_starts(tmp_path, override, named):
    gfile = tmp_path / "g.yaml"
    gfile.write_text("name: g\nparams_files: [config/arm.yaml]\nnodes: [{executable: arm}]\n")
    graph = bringup.load_graph(gfile)
    bringup.apply_overrides(graph, None, [override])
    with pytest.raises(bringup.GraphError, match=named):
        bringup.validate(graph)
