"""A driver node (MuJoCo bridge or Franka arm node) in its own process, seen from a probe over DDS, plus the
franky-sim server the arm node drives. Shared by test_driver_contract.py and test_arm_node.py."""
from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from robot_rl import bringup
from robot_rl.core.types import CONTROL_HZ, ActionChunk
from robot_rl.hardware import franky_sim
from robot_rl.ros import contract, convert, records
from robot_rl.ros.probe import Probe, wait_for

DT = 1 / CONTROL_HZ  # both drivers run at the default control rate in these tests
# Chunks are stamped with the last joint_states the probe saw; on a loaded 2-core machine that can be a second old,
# so the tests allow older observations than the 0.5 s default (test_stale_chunk_is_rejected sends 10 s old ones).
COMMON_OVERRIDES = ["safety.max_stamp_age_s=3.0"]
# The bridge runs sim time at half wall time: on a loaded machine it cannot keep real time, and its catch-up bursts
# would make a chunk's points late before they are due.
BRIDGE_OVERRIDES = ["lockstep=false", "realtime_factor=0.5", "camera_hz=5.0", "camera_width=32", "camera_height=32",
                    *COMMON_OVERRIDES]


@contextmanager
def franky_sim_server(tmp_dir, address: str | None = None, script=None):
    """One franky-sim server on a free loopback address; killed with its process group at the end. `script`: a
    fault-injecting wrapper (test/franky_sim_reflex.py).

    Skips when the separate venv is missing on a developer machine; in CI (CI=true) that is a failure."""
    if not franky_sim.sim_executable().exists():
        message = f"{franky_sim.sim_executable()} missing: run scripts/install.sh (creates .venv-franka-sim)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = franky_sim.FrankySimServer(address, log_path=tmp_dir / "franky_sim.log", script=script).start()
    try:
        yield server
    finally:
        server.stop()


class Driver:
    """Starts `executable` in namespace `ns` and records what it publishes.

    `joint_tolerance` is how closely a joint target is reached at rest: 0.02 rad for the bridge's stiff PD servo; the
    arm node's compliant joint impedance (stiffness 600 Nm/rad on the shoulder) on franky-sim keeps up to ~0.04 rad
    of steady-state error, because the simulator's gravity compensation (pinocchio on its URDF) does not match its
    MuJoCo model exactly."""

    def __init__(self, ns: str, executable: str, params_file: str, overrides: list[str], tmp_dir,
                 joint_tolerance: float = 0.02, wait_for_state: bool = True):
        gfile = tmp_dir / f"{executable}.yaml"
        gfile.write_text(f"name: {executable}_only\nparams_files: [{params_file}]\nnodes: [{{executable: {executable}}}]\n")
        self.ns, self.executable, self.joint_tolerance = ns, executable, joint_tolerance
        self.proc = bringup.start_graph(gfile, ns, [f"{executable}.{o}" for o in overrides])
        self.probe = Probe(f"{executable}_probe")
        self.joints = None
        self.stamp = 0.0
        self.joint_names: list[str] = []
        self.ee_position = None
        self.ee_frame = ""
        self.status: records.ArmStatus | None = None
        self.executed: list[ActionChunk] = []
        node = self.probe.node
        node.create_subscription(JointState, f"{ns}/joint_states", self._on_joints, contract.JOINT_STATES.qos)
        node.create_subscription(PoseStamped, f"{ns}/ee_pose", self._on_pose, contract.EE_POSE.qos)
        node.create_subscription(String, f"{ns}/arm/status", self._on_status, contract.ARM_STATUS.qos)
        node.create_subscription(JointTrajectory, f"{ns}/executed_action",
                                 lambda m: self.executed.append(convert.msg_to_chunk(m)), contract.EXECUTED_ACTION.qos)
        self.pub = node.create_publisher(JointTrajectory, f"{ns}/action_chunk", contract.ACTION_CHUNK.qos)
        up = (lambda: self.joints is not None) if wait_for_state else (lambda: self.status is not None)
        try:
            wait_for(lambda: up() and self.pub.get_subscription_count() > 0, 60, f"{executable} to come up")
        except AssertionError:
            self.close()
            raise AssertionError(f"{executable} did not come up; its log:\n" + "\n".join(self.log()[-40:])) from None

    def _on_joints(self, msg: JointState) -> None:
        self.joints, self.stamp = np.array(msg.position), convert.from_time(msg.header.stamp)
        self.joint_names = list(msg.name)

    def _on_pose(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        self.ee_position, self.ee_frame = np.array([p.x, p.y, p.z]), msg.header.frame_id

    def _on_status(self, msg: String) -> None:
        self.status = records.decode(msg.data, records.ArmStatus)

    def log(self) -> list[str]:
        return self.proc.logs[self.executable]

    def send(self, names, points, stamp: float | None = None) -> None:
        chunk = ActionChunk(self.stamp if stamp is None else stamp, DT, tuple(names), np.asarray(points, dtype=float))
        self.pub.publish(convert.chunk_to_msg(chunk))

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        """The service's answer; one that does not come fails with the driver's last log lines."""
        try:
            return self.probe.call(srv_type, f"{self.ns}/{name}", request, timeout=timeout)
        except TimeoutError as err:
            raise TimeoutError(f"{err}; last arm/status: {self.status}\n" + "\n".join(self.log()[-15:])) from None

    def rejected(self, reason: str) -> int:
        return (self.status.rejected.get(reason, 0) if self.status else 0) or 0

    def wait(self, predicate, timeout: float, what: str):
        """wait_for, with the driver's last status, joints and log lines in the failure message."""
        try:
            return wait_for(predicate, timeout, what)
        except AssertionError as err:
            raise AssertionError(f"{err}\nlast arm/status: {self.status}\njoints: {self.joints}\n"
                                 + "\n".join(self.log()[-10:])) from None

    def enable(self) -> None:
        assert self.call(SetBool, "arm/enable", SetBool.Request(data=True)).success
        self.wait_state("ready")

    def wait_state(self, state: str, timeout: float = 10.0) -> None:
        self.wait(lambda: self.status is not None and self.status.state == state, timeout, f"arm/status {state}")

    def close(self) -> None:
        self.probe.close()
        self.proc.stop()


def start_arm(ns: str, address: str, tmp_dir, wait_for_state: bool = True) -> Driver:
    return Driver(ns, "arm", "config/arm.yaml", [f"robot.host={address}", "robot.realtime=ignore", *COMMON_OVERRIDES],
                  tmp_dir, joint_tolerance=0.05, wait_for_state=wait_for_state)


def start_bridge(ns: str, tmp_dir) -> Driver:
    return Driver(ns, "mujoco_bridge", "config/sim.yaml", BRIDGE_OVERRIDES, tmp_dir)
