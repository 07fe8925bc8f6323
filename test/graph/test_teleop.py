"""Teleop: key map -> twist / buttons, the terminal key source on a real pseudo-terminal, and the node over DDS:
one-point teleop chunks on `action_chunk`, `teleop/active`, episode service calls, and the policy node yielding."""
from __future__ import annotations

import os
import subprocess
import sys
import termios
import time

import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_rl.bringup import ros_environment
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES
from robot_rl.nodes.teleop import TeleopNode
from robot_rl.ros import contract, convert, records
from robot_rl.teleop import Keyboard, KeyMap, QueueKeys, TerminalKeys, ee_delta
from robot_rl.ros.probe import Probe, wait_for
from node_harness import NodeInThread


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_keymap_to_twist_gripper_and_events():
    keys, clock = QueueKeys(), FakeClock()
    kb = Keyboard(keys, KeyMap(), hold_s=0.2, clock=clock)
    keys.push("wd")
    out = kb.poll()
    np.testing.assert_array_equal(out.twist, [1, -1, 0, 0, 0, 0])
    clock.now += 0.1
    keys.push("r")   # the earlier presses still hold, z joins
    np.testing.assert_array_equal(kb.poll().twist, [1, -1, 1, 0, 0, 0])
    clock.now += 0.15   # w and d expired, r still held
    np.testing.assert_array_equal(kb.poll().twist, [0, 0, 1, 0, 0, 0])
    keys.push("sj")     # s reverses x; j = +yaw
    np.testing.assert_array_equal(kb.poll().twist, [-1, 0, 1, 0, 0, 1])
    keys.push(" \nyb\rt?")
    out = kb.poll()
    assert out.gripper_toggle and out.events == ["start", "success", "rerecord", "start", "takeover"]
    clock.now += 1.0
    assert not kb.poll().twist.any()
    np.testing.assert_allclose(ee_delta([1, -0.5, 0, 0, 0, 2.0], 0.04, 0.01, 0.06),
                               [0.01, -0.005, 0, 0, 0, 0.06, 0.04])


def test_keymap_refuses_bad_bindings():
    with pytest.raises(ValueError, match="already bound"):
        KeyMap(stop="w").table()
    with pytest.raises(ValueError, match="not one character"):
        KeyMap(start="F1").table()


def test_terminal_keys_on_a_pseudo_terminal():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        keys = TerminalKeys(slave)
        lflag = termios.tcgetattr(slave)[3]
        assert not lflag & termios.ICANON and not lflag & termios.ECHO   # cbreak: no line buffer, no echo
        assert keys.read() == ""
        os.write(master, b"wt ")
        assert wait_for(lambda: keys.read() or None, 2, "keys from the pty") == "wt "
        keys.close()
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(OSError, match="not a terminal"):
        r, w = os.pipe()
        try:
            TerminalKeys(r)
        finally:
            os.close(r)
            os.close(w)


def status_msg(state: str, stamp: float) -> String:
    return String(data=records.encode(records.EpisodeStatus(stamp=stamp, episode=0, state=state, task="reach")))


def joints_msg(stamp: float, gripper: float = 0.04) -> JointState:
    return convert.joint_state_msg(JOINT_SPACE_NAMES, [0.0] * 7 + [gripper], [0.0] * 8, stamp)


def test_teleop_node_chunks_and_services():
    keys = QueueKeys()
    probe = Probe("teleop_probe")
    node = probe.node
    chunks, active, calls = [], [], []
    node.create_subscription(JointTrajectory, contract.ACTION_CHUNK.name, chunks.append, contract.ACTION_CHUNK.qos)
    node.create_subscription(Bool, contract.TELEOP_ACTIVE.name, lambda m: active.append(m.data),
                             contract.TELEOP_ACTIVE.qos)
    for name in ("episode/start", "episode/stop", "episode/mark_success", "episode/mark_failure", "recorder/discard"):
        def serve(_req, resp, name=name):
            calls.append(name)
            resp.success, resp.message = True, name
            return resp
        node.create_service(Trigger, name, serve)
    pub_status = node.create_publisher(String, contract.EPISODE_STATUS.name, contract.EPISODE_STATUS.qos)
    pub_joints = node.create_publisher(JointState, contract.JOINT_STATES.name, contract.JOINT_STATES.qos)
    teleop = NodeInThread(TeleopNode, {"control_hz": 10.0, "hold_s": 5.0, "max_step_m": 0.01, "max_step_rad": 0.05},
                          lambda cfg: ([Keyboard(keys, cfg.keys, cfg.hold_s)], []))
    try:
        wait_for(lambda: active == [False], 10, "teleop/active latched False")
        wait_for(lambda: teleop.node.count_subscribers(contract.JOINT_STATES.name) or None, 10, "discovery")
        keys.push("t")   # no episode is running: ignored
        wait_for(lambda: not keys.pending, 5, "the key read")
        pub_status.publish(status_msg("running", 1.0))
        wait_for(lambda: teleop.node.running_episode is not None, 5, "the running episode")
        pub_joints.publish(joints_msg(1.0))
        time.sleep(0.3)
        assert not chunks and active == [False], "the policy drives until the take-over button"
        keys.push("t")
        wait_for(lambda: active[-1:] == [True], 5, "take-over")
        t = 1.1
        for press in ("w", "a", " "):   # +x, then +y too; then close the gripper
            keys.push(press)
            time.sleep(0.1)
            pub_joints.publish(joints_msg(t))
            wait_for(lambda: chunks and convert.from_time(chunks[-1].header.stamp) == pytest.approx(t), 5,
                     f"a chunk stamped {t}")
            t += 0.1
        got = [convert.msg_to_chunk(m) for m in chunks]
        assert all(c.source == "teleop" and c.names == EE_SPACE_NAMES and c.horizon == 1 and c.dt == pytest.approx(0.1)
                   for c in got)
        np.testing.assert_allclose(got[0].points[0], [0.01, 0, 0, 0, 0, 0, 0.04])   # gripper: measured width
        np.testing.assert_allclose(got[1].points[0], [0.01, 0.01, 0, 0, 0, 0, 0.04])
        np.testing.assert_allclose(got[2].points[0], [0.01, 0.01, 0, 0, 0, 0, 0.0])    # closed
        pub_joints.publish(joints_msg(t - 0.08))   # faster than control_hz: no extra chunk
        time.sleep(0.3)
        assert len(chunks) == 3
        keys.push("\nyb")
        wait_for(lambda: len(calls) == 5, 5, "service calls")
        assert calls == ["episode/start", "episode/mark_success", "recorder/discard", "episode/stop", "episode/start"]
        pub_status.publish(status_msg("ended", 2.0))   # a take-over ends with its episode
        wait_for(lambda: active[-1:] == [False], 5, "policy control again")
    finally:
        teleop.close()
        probe.close()


def test_policy_node_yields_while_teleop_is_active():
    from robot_rl.sim import PandaSim

    sim = PandaSim("reach", cameras={}, render=False)
    sim.reset(0)
    task_state = sim.task_state()
    sim.close()
    probe = Probe("policy_probe")
    node = probe.node
    chunks = []
    node.create_subscription(JointTrajectory, contract.ACTION_CHUNK.name, chunks.append, contract.ACTION_CHUNK.qos)
    pubs = {name: node.create_publisher(t.msg_type, t.name, t.qos) for name, t in (
        ("status", contract.EPISODE_STATUS), ("joints", contract.JOINT_STATES), ("task", contract.TASK_STATE),
        ("teleop", contract.TELEOP_ACTIVE))}
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.nodes.policy", "--ros-args", "-p", "horizon:=1",
                             "-p", "sync_wait_s:=0.0"], env=ros_environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    clock = [1.0]

    def tick():
        t = clock[0]
        pubs["task"].publish(String(data=records.encode(records.TaskState(stamp=t, task="reach", success=False,
                                                                          state=task_state))))
        pubs["joints"].publish(joints_msg(t))
        clock[0] += 1 / 15

    try:
        wait_for(lambda: node.count_subscribers(contract.TELEOP_ACTIVE.name) or None, 30, "the policy node")
        pubs["status"].publish(status_msg("running", 1.0))
        wait_for(lambda: (tick(), chunks)[1], 20, "policy chunks", interval=0.1)
        pubs["teleop"].publish(Bool(data=True))
        time.sleep(0.5)
        n = len(chunks)
        for _ in range(8):
            tick()
            time.sleep(0.1)
        assert len(chunks) == n, "the policy planned while a human had taken over"
        pubs["teleop"].publish(Bool(data=False))
        wait_for(lambda: (tick(), len(chunks) > n)[1], 10, "policy chunks again", interval=0.1)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        probe.close()
    assert "Traceback" not in out, out
