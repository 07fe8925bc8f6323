"""Policy node: builds observations from stamped topics, runs the policy backend, publishes action chunks.

Planning is driven by `joint_states`: at t* = its stamp, once the previous chunk's points are used up, the node takes
the newest sample at or before t* from every stream the backend needs (waiting up to `sync_wait_s` for samples
stamped t* itself), refuses stale streams, and publishes a chunk stamped t*. A learned backend takes new weights from
the learner through a WeightUpdate (checked by sha256, swapped only between episodes) and reports on `policy/active`.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Bool, String

from robot_rl.configs.policy import PolicyConfig
from robot_rl.core.observation import StaleStream, StreamBuffer
from robot_rl.core.state import EE_POSE_STREAM, JOINT_STATES_STREAM, TASK_STATE_STREAM, camera_stream
from robot_rl.core.types import ActionChunk
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, decode_or_log, run_node


def make_backend(cfg: PolicyConfig):
    """The learned backend (a checkpoint, on torch) or the scripted one (the sim expert, without torch)."""
    if cfg.backend == "learned":
        from robot_rl.policies import load_policy, load_selector
        from robot_rl.policies.learned import LearnedBackend

        policy, version = load_policy(Path(cfg.checkpoint))
        return LearnedBackend(policy, version, cfg.seed, load_selector(Path(cfg.checkpoint), policy))
    from robot_rl.policies.scripted import ScriptedBackend

    return ScriptedBackend(cfg.horizon, cfg.noise, cfg.seed)


class PolicyNode(Node):
    def __init__(self):
        super().__init__("policy")
        self.cfg = declare_config(self, PolicyConfig)
        self.period = 1.0 / self.cfg.control_hz
        self.backend = make_backend(self.cfg)
        self.streams = StreamBuffer()
        self.max_age = {name: self.cfg.stale_periods * self.period for name in self.backend.required_streams}
        self.episode: int | None = None
        self.next_plan = -np.inf
        self.pending: tuple[float, float] | None = None  # (t*, wall time it was first tried)
        self.human_control = False  # teleop/active: a human has taken over, the policy yields

        self.pub_chunk = contract.publisher(self, contract.ACTION_CHUNK)
        self.pub_active = contract.publisher(self, contract.POLICY_ACTIVE)
        contract.subscribe(self, contract.JOINT_STATES, self.on_joints)
        contract.subscribe(self, contract.EPISODE_STATUS, self.on_status)
        contract.subscribe(self, contract.TELEOP_ACTIVE, self.on_teleop)
        streams = self.backend.required_streams
        if TASK_STATE_STREAM in streams:
            contract.subscribe(self, contract.TASK_STATE, self.on_task_state)
        if EE_POSE_STREAM in streams:
            contract.subscribe(self, contract.EE_POSE, self.on_pose)
        for cam in self.backend.cameras:
            contract.subscribe(self, contract.camera_image(cam),
                               lambda msg, name=camera_stream(cam): self.on_image(name, msg))
        self.weights = None  # the weight handshake of a learned backend
        if self.cfg.backend == "learned":
            from robot_rl.policies.weight_update import WeightUpdate

            self.weights = WeightUpdate(self.backend, self.cfg.checkpoint)
            contract.subscribe(self, contract.POLICY_VERSION, self.on_version)
            contract.subscribe(self, contract.POLICY_WEIGHTS, self.on_weights)
            self.publish_active(self.weights.active())
        self.create_timer(0.01, self.try_plan)

    def on_status(self, msg: String) -> None:
        status = decode_or_log(self, msg.data, records.EpisodeStatus)
        if status is None:
            return
        if status.state == "running" and status.episode != self.episode:
            if self.weights is not None:
                self.publish_active(self.weights.episode_started())  # weights change only at an episode boundary
            self.episode = status.episode
            self.backend.reset(status.episode)
            self.next_plan = status.stamp - 1e-9
            self.pending = None
        elif status.state != "running":
            self.episode = None
            self.pending = None
            if self.weights is not None:
                self.publish_active(self.weights.episode_ended())

    def on_teleop(self, msg: Bool) -> None:
        self.human_control = bool(msg.data)
        self.pending = None
        self.next_plan = -np.inf  # when control comes back, plan at the next joint_states

    def on_joints(self, msg) -> None:
        stamp = convert.from_time(msg.header.stamp)
        self.streams.add(JOINT_STATES_STREAM, stamp, np.asarray(msg.position))
        if self.episode is not None and not self.human_control and stamp >= self.next_plan - 0.5 * self.period:
            self.pending = (stamp, time.monotonic())
        self.try_plan()

    def on_pose(self, msg) -> None:
        self.streams.add(EE_POSE_STREAM, convert.from_time(msg.header.stamp), convert.msg_to_pose(msg))
        self.try_plan()

    def on_image(self, name: str, msg) -> None:
        try:
            image = convert.msg_to_image(msg)
        except convert.ConversionError as err:
            self.get_logger().error(f"{name}: image rejected: {err}", throttle_duration_sec=1.0)
            return
        self.streams.add(name, convert.from_time(msg.header.stamp), image)
        self.try_plan()

    def on_task_state(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.TaskState)
        if rec is not None:
            self.streams.add(TASK_STATE_STREAM, rec.stamp, rec.state)
            self.try_plan()

    # ---- weights: the WeightUpdate decides, the node reports ---------------------------------------------------
    def on_version(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.PolicyVersion)
        if rec is not None:
            self.publish_active(self.weights.on_version(rec.version, rec.sha256))

    def on_weights(self, msg) -> None:
        self.publish_active(self.weights.on_weights(bytes(msg.data)))

    def publish_active(self, active) -> None:
        """policy/active after a swap or a refusal (None: nothing changed)."""
        if active is None:
            return
        if active.message:
            self.get_logger().error(f"{active.message}; version {active.version} keeps running")
        else:
            self.get_logger().info(f"policy version {active.version} active")
        rec = records.PolicyVersion(stamp=self.get_clock().now().nanoseconds * 1e-9, version=active.version,
                                    sha256=active.sha256, policy_type=self.backend.policy.spec.type,
                                    message=active.message)
        self.pub_active.publish(String(data=records.encode(rec)))

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
