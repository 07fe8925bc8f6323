"""Policy node: builds observations from stamped topics, runs the policy backend, publishes action chunks.

Planning is driven by `joint_states`: at t* = its stamp, once the previous chunk's points are used up, the node takes
the newest sample at or before t* from every stream the backend needs (waiting up to `sync_wait_s` for samples
stamped t* itself), refuses stale streams, and publishes a chunk stamped t*.
"""
from __future__ import annotations

import time

import numpy as np
from pydantic import BaseModel, Field
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from robot_rl.core.observation import StaleStream, StreamBuffer
from robot_rl.core.types import ActionChunk
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, run_node


class PolicyConfig(BaseModel, extra="forbid"):
    backend: str = Field("scripted", pattern="^(scripted)$")
    control_hz: float = Field(15.0, gt=0)
    horizon: int = Field(5, ge=1, le=128, description="points per published chunk (all of them are executed)")
    noise: float = Field(0.0, ge=0, description="scripted backend: expert noise")
    seed: int = 0
    stale_periods: float = Field(2.0, gt=0, description="a stream older than this many periods is stale")
    sync_wait_s: float = Field(0.05, ge=0, description="wall time to wait for every stream to reach t*")


CONFIG = PolicyConfig


def make_backend(cfg: PolicyConfig):
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
        self.episode: int | None = None
        self.next_plan = -np.inf
        self.pending: tuple[float, float] | None = None  # (t*, wall time it was first tried)
        self.stale_refusals = 0

        self.pub_chunk = self.create_publisher(JointTrajectory, contract.ACTION_CHUNK.name, contract.ACTION_CHUNK.qos)
        self.create_subscription(JointState, contract.JOINT_STATES.name, self.on_joints, contract.JOINT_STATES.qos)
        self.create_subscription(String, contract.EPISODE_STATUS.name, self.on_status, contract.EPISODE_STATUS.qos)
        if "task_state" in self.backend.required_streams:
            self.create_subscription(String, contract.TASK_STATE.name, self.on_task_state, contract.TASK_STATE.qos)
        self.create_timer(0.01, self.try_plan)

    def on_status(self, msg: String) -> None:
        try:
            status = records.decode(msg.data, records.EpisodeStatus)
        except records.RecordError as err:
            self.get_logger().error(f"ignored episode status: {err}")
            return
        if status.state == "running" and status.episode != self.episode:
            self.episode = status.episode
            self.backend.reset(status.episode)
            self.next_plan = status.stamp - 1e-9
            self.pending = None
        elif status.state != "running":
            self.episode = None
            self.pending = None

    def on_joints(self, msg: JointState) -> None:
        stamp = convert.from_time(msg.header.stamp)
        self.streams.add("joint_states", stamp, np.asarray(msg.position))
        if self.episode is not None and stamp >= self.next_plan - 0.5 * self.period:
            self.pending = (stamp, time.monotonic())
        self.try_plan()

    def on_task_state(self, msg: String) -> None:
        try:
            rec = records.decode(msg.data, records.TaskState)
        except records.RecordError as err:
            self.get_logger().error(f"ignored task state: {err}", throttle_duration_sec=1.0)
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
