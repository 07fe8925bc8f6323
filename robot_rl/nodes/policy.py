"""Policy node: builds observations from stamped topics, runs the policy backend, publishes action chunks.

Planning is driven by `joint_states`: at t* = its stamp, once the previous chunk's points are used up, the node takes
the newest sample at or before t* from every stream the backend needs (waiting up to `sync_wait_s` for samples
stamped t* itself), refuses stale streams, and publishes a chunk stamped t*.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String, UInt8MultiArray
from trajectory_msgs.msg import JointTrajectory

from robot_rl.core.observation import StaleStream, StreamBuffer
from robot_rl.core.types import ActionChunk
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, decode_or_log, run_node


class PolicyConfig(BaseModel, extra="forbid"):
    backend: str = Field("scripted", pattern="^(scripted|learned)$")
    checkpoint: str = Field("", description="learned backend: policy directory (policy.safetensors + config.json)")
    control_hz: float = Field(15.0, gt=0)
    horizon: int = Field(5, ge=1, le=128, description="points per published chunk (all of them are executed)")
    noise: float = Field(0.0, ge=0, description="scripted backend: expert noise")
    seed: int = 0
    stale_periods: float = Field(2.0, gt=0, description="a stream older than this many periods is stale")
    sync_wait_s: float = Field(0.05, ge=0, description="wall time to wait for every stream to reach t*")


CONFIG = PolicyConfig


def make_backend(cfg: PolicyConfig):
    if cfg.backend == "learned":
        from robot_rl.policies import load_policy
        from robot_rl.policies.learned import LearnedPolicy

        policy, version = load_policy(Path(cfg.checkpoint))
        return LearnedPolicy(policy, version, cfg.seed)
    from robot_rl.policies.scripted import ScriptedPolicy

    return ScriptedPolicy(cfg.horizon, cfg.noise, cfg.seed)


class PolicyNode(Node):
    def __init__(self):
        super().__init__("policy")
        self.cfg = declare_config(self, PolicyConfig)
        self.period = 1.0 / self.cfg.control_hz
        self.backend = make_backend(self.cfg)
        self.streams = StreamBuffer()
        self.max_age = {"joint_states": self.cfg.stale_periods * self.period}
        for name in self.backend.required_streams:
            self.max_age[name] = self.cfg.stale_periods * self.period
        self.staged = None  # (policy, version, sha256) received, waiting for an episode boundary
        self.expected_sha: dict[int, str] = {}
        self.unannounced: tuple[bytes, str] | None = None  # newest weights whose policy/version record is missing
        self.episode: int | None = None
        self.next_plan = -np.inf
        self.pending: tuple[float, float] | None = None  # (t*, wall time it was first tried)
        self.stale_refusals = 0
        self.human_control = False  # teleop/active: a human has taken over, the policy yields

        self.pub_chunk = self.create_publisher(JointTrajectory, contract.ACTION_CHUNK.name, contract.ACTION_CHUNK.qos)
        self.create_subscription(JointState, contract.JOINT_STATES.name, self.on_joints, contract.JOINT_STATES.qos)
        self.create_subscription(String, contract.EPISODE_STATUS.name, self.on_status, contract.EPISODE_STATUS.qos)
        self.create_subscription(Bool, contract.TELEOP_ACTIVE.name, self.on_teleop, contract.TELEOP_ACTIVE.qos)
        self.pub_active = self.create_publisher(String, contract.POLICY_ACTIVE.name, contract.POLICY_ACTIVE.qos)
        streams = self.backend.required_streams
        if "task_state" in streams:
            self.create_subscription(String, contract.TASK_STATE.name, self.on_task_state, contract.TASK_STATE.qos)
        if "ee_pose" in streams:
            self.create_subscription(PoseStamped, contract.EE_POSE.name, self.on_pose, contract.EE_POSE.qos)
        for name in streams:
            if name.startswith("camera/"):
                cam = name.split("/", 1)[1]
                topic = contract.camera_image(cam)
                self.create_subscription(Image, topic.name, lambda m, n=name: self.on_image(n, m), topic.qos)
        if self.cfg.backend == "learned":
            from robot_rl.policies.checkpoint import CONFIG_FILE

            # load_policy checked this digest against the weights file
            self.active_sha = json.loads((Path(self.cfg.checkpoint) / CONFIG_FILE).read_text())["sha256"]
            self.create_subscription(String, contract.POLICY_VERSION.name, self.on_version,
                                     contract.POLICY_VERSION.qos)
            self.create_subscription(UInt8MultiArray, contract.POLICY_WEIGHTS.name, self.on_weights,
                                     contract.POLICY_WEIGHTS.qos)
            self.publish_active()
        self.create_timer(0.01, self.try_plan)

    def on_status(self, msg: String) -> None:
        status = decode_or_log(self, msg.data, records.EpisodeStatus)
        if status is None:
            return
        if status.state == "running" and status.episode != self.episode:
            self.apply_staged()  # weights change only at an episode boundary
            self.episode = status.episode
            self.backend.reset(status.episode)
            self.next_plan = status.stamp - 1e-9
            self.pending = None
        elif status.state != "running":
            self.episode = None
            self.pending = None
            self.apply_staged()

    def on_teleop(self, msg: Bool) -> None:
        self.human_control = bool(msg.data)
        self.pending = None
        self.next_plan = -np.inf  # when control comes back, plan at the next joint_states

    def on_joints(self, msg: JointState) -> None:
        stamp = convert.from_time(msg.header.stamp)
        self.streams.add("joint_states", stamp, np.asarray(msg.position))
        if self.episode is not None and not self.human_control and stamp >= self.next_plan - 0.5 * self.period:
            self.pending = (stamp, time.monotonic())
        self.try_plan()

    def on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        self.streams.add("ee_pose", convert.from_time(msg.header.stamp), ((p.x, p.y, p.z), (q.w, q.x, q.y, q.z)))
        self.try_plan()

    def on_image(self, name: str, msg: Image) -> None:
        try:
            image = convert.msg_to_image(msg)
        except convert.ConversionError as err:
            self.get_logger().error(f"{name}: image rejected: {err}", throttle_duration_sec=1.0)
            return
        self.streams.add(name, convert.from_time(msg.header.stamp), image)
        self.try_plan()

    # ---- weights: checked by sha256, swapped only between episodes -------------------------------------------
    def on_version(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.PolicyVersion)
        if rec is None:
            return
        self.expected_sha[rec.version] = rec.sha256
        if self.unannounced is not None and self.unannounced[1] == rec.sha256:  # the weights came first
            blob, digest = self.unannounced
            self.unannounced = None
            self.consider_weights(blob, digest)

    def on_weights(self, msg: UInt8MultiArray) -> None:
        blob = bytes(msg.data)
        digest = hashlib.sha256(blob).hexdigest()
        if digest not in self.expected_sha.values():  # topics are not ordered: its record may still be on its way
            self.unannounced = (blob, digest)
            self.get_logger().info(f"weights {digest[:12]}… wait for their policy/version record")
            return
        self.consider_weights(blob, digest)

    def consider_weights(self, blob: bytes, digest: str) -> None:
        from robot_rl.policies import CheckpointError, policy_from_bytes
        from robot_rl.policies.learned import required_streams

        try:
            policy, version = policy_from_bytes(blob, expected_sha256=digest)
        except CheckpointError as err:
            self.refuse(str(err))
            return
        if self.expected_sha.get(version) != digest:
            self.refuse(f"the weights say version {version}, but the policy/version record for {version} has "
                        f"another sha256")
            return
        if list(policy.spec.action_names) != list(self.backend.action_names):
            self.refuse(f"weights act on {policy.spec.action_names}, the running policy on "
                        f"{list(self.backend.action_names)}")
            return
        if required_streams(policy.spec) != self.backend.required_streams or \
                policy.spec.state_dim != self.backend.policy.spec.state_dim:
            self.refuse(f"weights observe {required_streams(policy.spec)} (state dim {policy.spec.state_dim}), the "
                        f"running policy {self.backend.required_streams} (state dim "
                        f"{self.backend.policy.spec.state_dim})")
            return
        if version <= self.backend.version:
            return
        self.staged = (policy, version, digest)
        if self.episode is None:
            self.apply_staged()

    def refuse(self, reason: str) -> None:
        self.get_logger().error(f"new weights refused, version {self.backend.version} keeps running: {reason}")
        self.publish_active(message=f"refused new weights: {reason}")

    def apply_staged(self) -> None:
        if self.staged is None:
            return
        policy, version, self.active_sha = self.staged
        self.staged = None
        self.backend.swap(policy, version)
        self.publish_active()
        self.get_logger().info(f"policy version {version} active")

    def publish_active(self, message: str = "") -> None:
        rec = records.PolicyVersion(stamp=self.get_clock().now().nanoseconds * 1e-9, version=self.backend.version,
                                    sha256=self.active_sha,
                                    policy_type=self.backend.policy.spec.type, message=message)
        self.pub_active.publish(String(data=records.encode(rec)))

    def on_task_state(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.TaskState)
        if rec is None:
            return
        self.streams.add("task_state", rec.stamp, rec.state)
        self.try_plan()

    def try_plan(self) -> None:
        if self.pending is None or self.episode is None:
            return
        t_star, since = self.pending
        synced = all((self.streams.newest_stamp(n) or -np.inf) >= t_star - 1e-9 for n in self.max_age)
        if not synced and time.monotonic() - since < self.cfg.sync_wait_s:
            return
        self.pending = None
        try:
            obs = self.streams.assemble(t_star, self.max_age)
        except StaleStream as err:
            self.stale_refusals += 1
            self.get_logger().warning(f"not planning at t*={t_star:.3f}: {err}", throttle_duration_sec=1.0)
            return
        points = self.backend.act(obs)
        chunk = ActionChunk(t_star, self.period, tuple(self.backend.action_names), points, source="policy")
        self.pub_chunk.publish(convert.chunk_to_msg(chunk))
        self.next_plan = t_star + len(points) * self.period


def main(args=None) -> None:
    raise SystemExit(run_node(PolicyNode, args))


if __name__ == "__main__":
    main()
