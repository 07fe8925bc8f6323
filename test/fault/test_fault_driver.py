"""Fault matrix on the arm drivers, the MuJoCo bridge and the Franka arm node on franky-sim (real processes, real DDS):
#4 every kind of bad chunk rejected and counted exactly once while the arm stays inside its limits, #5 e-stop within
one control tick, #6 a reflex from the robot (franky-sim with fault injection): error state, recover, continue.
test_driver_contract.py holds the shared contract (rejections reported, e-stop hold + recover); these tests add the
exact counts, the limits, the tick count and the reflex. Measured numbers are printed (pytest -s)."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from driver_harness import BRIDGE_OVERRIDES, COMMON_OVERRIDES, DT, Driver, franky_sim_server
from fault_harness import Watch, listening_tcp, sockets_besides_dds
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES, ActionChunk
from robot_rl.ros import convert
from robot_rl.ros.probe import wait_for

pytestmark = pytest.mark.graph
# A narrow workspace in y around the start pose (y = 0): joint targets that swing the TCP sideways leave it, and
# EE motion along +y runs into it.
Y_LIMIT = 0.05
WORKSPACE = [f"safety.workspace_min=[0.2, {-Y_LIMIT}, 0.0]", f"safety.workspace_max=[0.8, {Y_LIMIT}, 0.7]"]
REFLEX_SERVER = Path(__file__).resolve().parents[1] / "franky_sim_reflex.py"


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    driver = Driver("/fault_bridge", "mujoco_bridge", "config/sim.yaml", BRIDGE_OVERRIDES + WORKSPACE,
                    tmp_path_factory.mktemp("bridge"))
    yield driver, Watch(driver.probe, driver.ns)
    driver.close()


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("arm")
    with franky_sim_server(tmp, script=REFLEX_SERVER) as server:
        # joint_states and ee_pose at the lowest rate the arm allows: the Watch keeps every sample in Python, and at
        # 200 Hz a starved test process fell seconds behind them (status records, 2 Hz, still came on time)
        driver = Driver("/fault_arm", "arm", "config/arm.yaml",
                        [f"robot.host={server.address}", "robot.realtime=ignore", "state_hz=100.0", *COMMON_OVERRIDES,
                         *WORKSPACE], tmp)
        try:
            yield driver, Watch(driver.probe, driver.ns), server
        finally:
            driver.close()


def driver_of(request, name: str):
    driver, watch, *_ = request.getfixturevalue(name)
    return driver, watch



def msg(driver: Driver, names, points, stamp_offset: float = 0.0) -> JointTrajectory:
    """A chunk stamped with the newest joint_states (plus `stamp_offset`)."""
    chunk = ActionChunk(driver.stamp + stamp_offset, DT, tuple(names), np.asarray(points, dtype=float))
    return convert.chunk_to_msg(chunk)


def edited(message: JointTrajectory, edit) -> JointTrajectory:
    edit(message)
    return message


EE_STILL = np.array([[0.0, 0.0, 0.0, 0, 0, 0, 0.04]] * 3)
# (what, rejection reason, message from (driver, joints)); each is built just before it is sent, so its stamp is fresh
BAD_CHUNKS = [
    ("NaN", "non_finite", lambda d, q: msg(d, EE_SPACE_NAMES, np.where(np.eye(3, 7, dtype=bool), np.nan, EE_STILL))),
    ("inf", "non_finite", lambda d, q: msg(d, JOINT_SPACE_NAMES, [np.r_[q[:7], np.inf]])),
    ("no points", "malformed", lambda d, q: edited(msg(d, EE_SPACE_NAMES, EE_STILL), lambda m: setattr(m, "points", []))),
    ("129 points", "wrong_length", lambda d, q: msg(d, EE_SPACE_NAMES, np.tile(EE_STILL[0], (129, 1)))),
    ("a point with 6 values", "malformed",
     lambda d, q: edited(msg(d, EE_SPACE_NAMES, EE_STILL), lambda m: setattr(m.points[1], "positions", [0.0] * 6))),
    ("time_from_start not (i+1)*dt", "malformed", lambda d, q: edited(
        msg(d, EE_SPACE_NAMES, EE_STILL), lambda m: setattr(m.points[2], "time_from_start", convert.to_duration(1.0)))),
    ("wrong joint names", "wrong_names", lambda d, q: msg(d, [f"joint{i}" for i in range(8)], [q])),
    # joint 1 by 0.08 rad per point: the TCP, 0.3 m out, swings 7 cm sideways, out of the +-5 cm box
    ("TCP out of the workspace", "workspace",
     lambda d, q: msg(d, JOINT_SPACE_NAMES, [q + np.r_[0.08 * k, np.zeros(7)] for k in (1, 2, 3)])),
    ("beyond a joint limit", "joint_limits", lambda d, q: msg(d, JOINT_SPACE_NAMES, [q + np.r_[0, 0, 0, 3.0, 0, 0, 0, 0]])),
    ("EE jump 5 cm", "jump", lambda d, q: msg(d, EE_SPACE_NAMES, [[0.05, 0, 0, 0, 0, 0, 0.04]])),
    ("joint jump 0.5 rad", "jump", lambda d, q: msg(d, JOINT_SPACE_NAMES, [q + np.r_[0.5, np.zeros(7)]])),
    ("gripper 0.5 m", "gripper_range", lambda d, q: msg(d, EE_SPACE_NAMES, [[0, 0, 0, 0, 0, 0, 0.5]])),
    ("stamped 10 s ago", "stale", lambda d, q: msg(d, EE_SPACE_NAMES, EE_STILL, stamp_offset=-10.0)),
]


@pytest.mark.parametrize("name", ["bridge", "arm"])
def test_each_bad_chunk_is_rejected_and_counted_once_and_the_arm_stays_inside_its_limits(request, name):
    driver, watch = driver_of(request, name)
    assert driver.call(Trigger, "arm/reset", Trigger.Request()).success  # home: the TCP 0.3 m or more out, y = 0
    driver.enable()
    start_joints = driver.joints.copy()
    for what, reason, make in BAD_CHUNKS:
        before = dict(driver.status.rejected)
        driver.pub.publish(make(driver, start_joints))
        driver.wait(lambda: driver.rejected(reason) == before.get(reason, 0) + 1, 10, f"{what}: a {reason} rejection")
        after = dict(driver.status.rejected)
        assert after == {**before, reason: before.get(reason, 0) + 1}, (what, before, after)  # that one, once
        assert driver.status.last_rejection.startswith(reason), (what, driver.status.last_rejection)
    assert np.abs(driver.joints[:7] - start_joints[:7]).max() < 0.01, "a rejected chunk moved the arm"
    # a valid chunk that pushes through a limit is clipped, step by step, at the box
    clips, sent = driver.status.clipped.get("workspace", 0), len(watch.executed)
    driver.send(EE_SPACE_NAMES, [[0.0, 0.01, 0.0, 0, 0, 0, 0.04]] * 20)  # 20 cm towards +y; 5 cm of room
    driver.wait(lambda: len([c for c in watch.executed[sent:] if c.source == "policy"]) >= 15, 20, "the chunk executed")
    driver.wait(lambda: driver.status.clipped.get("workspace", 0) >= clips + 5, 10, "workspace clips counted")
    lower, upper = joint_limits(name)
    poses = np.array([p for _, p in watch.poses])
    joints = np.array([q[:7] for _, q in watch.joints])
    overshoot = poses[:, 1].max() - Y_LIMIT
    print(f"\n{name}: {len(BAD_CHUNKS)} bad chunks, each rejected and counted once; a 20 cm push with 5 cm of room: "
          f"TCP y max {poses[:, 1].max():.4f} m ({overshoot * 1e3:+.1f} mm past the edge), "
          f"{driver.status.clipped.get('workspace', 0) - clips} workspace clips")
    assert overshoot < 0.005
    assert np.all(joints >= lower - 1e-3) and np.all(joints <= upper + 1e-3)


def joint_limits(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "arm":
        from robot_rl.configs.arm import FR3_JOINT_LOWER, FR3_JOINT_UPPER

        return np.asarray(FR3_JOINT_LOWER), np.asarray(FR3_JOINT_UPPER)
    from robot_rl.sim import PandaSim

    sim = PandaSim("reach", cameras={}, render=False)
    lower, upper = sim.joint_limits()
    sim.close()
    return lower[:7], upper[:7]


@pytest.mark.parametrize("name", ["bridge", "arm"])
def test_estop_stops_within_one_control_tick(request, name):
    """From the tick at which arm/stop is handled, no point of the running chunk is commanded any more; the TCP only
    settles onto the frozen target."""
    driver, watch = driver_of(request, name)
    driver.enable()
    driver.send(EE_SPACE_NAMES, [[0.0, 0.0, -0.005, 0, 0, 0, 0.04]] * 40)  # a slow descent, 2.7 s long
    moving = len(watch.executed)
    driver.wait(lambda: len([c for c in watch.executed[moving:] if c.source == "policy"]) >= 5, 15, "motion")
    statuses = len(watch.arm)
    assert driver.call(Trigger, "arm/stop", Trigger.Request()).success
    stop = wait_for(lambda: next((s for s in watch.arm[statuses:] if s.state == "estop"), None), 10, "estop status")
    driver.wait(lambda: watch.poses and watch.poses[-1][0] > stop.stamp + 1.0, 15, "a second after the stop")
    policy = [c.stamp for c in watch.executed[moving:] if c.source == "policy"]
    after_stop = [t for t in policy if t >= stop.stamp - 1e-6]
    at_stop = next(np.array(p) for t, p in reversed(watch.poses) if t <= stop.stamp)
    travel = max(np.linalg.norm(np.array(p) - at_stop) for t, p in watch.poses if stop.stamp <= t <= stop.stamp + 1)
    print(f"\n{name}: e-stop at t={stop.stamp:.3f}: last commanded point {stop.stamp - policy[-1]:+.3f} s before it, "
          f"{len(after_stop)} after it; TCP travel after the stop {travel * 1e3:.2f} mm")
    assert after_stop == [], after_stop
    assert stop.stamp - policy[-1] <= 1.5 * DT  # it was moving right up to the stop
    assert travel < 0.01  # the bridge's stiff servo stops dead; the arm's compliant impedance hold gives a little
    assert driver.call(Trigger, "arm/recover", Trigger.Request()).success
    driver.enable()


def test_robot_reflex_gives_error_state_then_recover_and_continue(arm):
    """franky-sim aborts the running motion with a reflex (as a collision would on the robot): the node goes
    to `error` naming the reflex, commands nothing and refuses chunks and enable; arm/recover runs the robot's
    automatic error recovery and control continues."""
    driver, watch, server = arm
    driver.enable()
    driver.send(EE_SPACE_NAMES, [[0.0, 0.0, 0.004, 0, 0, 0, 0.04]] * 60)  # a slow 24 cm rise
    moving = len(watch.executed)
    driver.wait(lambda: len(watch.executed[moving:]) >= 3, 15, "motion")
    statuses = len(watch.arm)
    os.kill(server.proc.pid, signal.SIGUSR1)
    error = driver.wait(lambda: next((s for s in watch.arm[statuses:] if s.state == "error"), None), 10, "error state")
    assert "reflex" in error.message, error.message
    driver.wait(lambda: watch.joints and watch.joints[-1][0] > error.stamp + 0.5, 20, "half a second in error")
    assert [c for c in watch.executed[moving:] if c.stamp > error.stamp + 1e-6] == []
    held = np.array([q[:7] for t, q in watch.joints if error.stamp + 0.2 <= t <= error.stamp + 0.5])
    assert np.ptp(held, axis=0).max() < 0.01, "the arm moved while in error"
    before = driver.rejected("not_ready")
    driver.send(EE_SPACE_NAMES, [[0.0, 0.0, 0.004, 0, 0, 0, 0.04]] * 5)
    driver.wait(lambda: driver.rejected("not_ready") > before, 5, "a chunk refused in error")
    assert not driver.call(SetBool, "arm/enable", SetBool.Request(data=True)).success
    resp = driver.call(Trigger, "arm/recover", Trigger.Request())
    assert resp.success, resp.message
    assert "automatic error recovery: reflex cleared" in server.log_path.read_text()
    driver.wait_state("ready")
    start = driver.ee_position.copy()
    driver.send(EE_SPACE_NAMES, [[0.0, 0.0, 0.004, 0, 0, 0, 0.04]] * 25)
    driver.wait(lambda: driver.ee_position[2] - start[2] > 0.03, 15, "motion after recover")
    print(f"\narm: reflex -> error ({error.message}); recover -> ready; moved again")


def test_arm_node_listens_on_nothing_and_talks_only_to_dds_and_the_robot(arm):
    driver, _, server = arm
    domain = int(os.environ["ROS_DOMAIN_ID"])
    pid = driver.proc.procs["arm"].pid
    assert listening_tcp(pid) == []
    odd = sockets_besides_dds(pid, domain)
    robot = (f"{server.address}:1337", f"{server.address}:1338")  # libfranka's robot and gripper connections
    assert odd and all(s.startswith("tcp ") and any(r in s for r in robot) for s in odd), odd
    print(f"\narm node: no listening socket; besides DDS only {odd}")
