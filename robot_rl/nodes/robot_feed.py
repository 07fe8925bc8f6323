"""One robot as the learner node sees it: its streams into an EpisodeAssembler, its episode status, and the weights
published to it. A learner serving a fleet holds one RobotFeed per robot namespace; a learner in a robot's own
namespace holds one with relative topic names.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from std_msgs.msg import String, UInt8MultiArray

from robot_rl.core.state import EE_POSE_STREAM, JOINT_STATES_STREAM, TASK_STATE_STREAM, camera_stream
from robot_rl.policies import sha256_hex
from robot_rl.policies.encoders import resize_frames
from robot_rl.rl.assembler import EndWait, EpisodeAssembler
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import decode_or_log

EndedEpisode = Callable[["RobotFeed", records.EpisodeStatus, float, float], None]


class RobotFeed:
    def __init__(self, node, robot: str, spec, period: float, on_ended: EndedEpisode):
        """`robot`: its namespace ("": the node's own); `spec`: the policy's PolicySpec (which streams make a state);
        `on_ended(feed, status, start_stamp, end_stamp)` takes an ended episode once its last parts have come."""
        self.node, self.robot, self.spec, self.on_ended = node, robot, spec, on_ended
        self.assembler = EpisodeAssembler(period, spec.environment_state, spec.cameras)
        self.episode, self.start_stamp = None, 0.0  # the running episode, and its start
        self.ending: tuple[records.EpisodeStatus, EndWait] | None = None  # an ended episode not yet taken
        self.trained_through = -1  # this robot's newest episode whose updates the published weights hold
        self.announced = False  # its first weights went out, once its streams were connected
        self.pub_weights = contract.publisher(node, self.topic(contract.POLICY_WEIGHTS))
        self.pub_version = contract.publisher(node, self.topic(contract.POLICY_VERSION))
        for topic, callback, qos in [(contract.JOINT_STATES, self.on_joints, contract.LOSSLESS),
                                     (contract.EE_POSE, self.on_pose, contract.LOSSLESS),
                                     (contract.EXECUTED_ACTION, self.on_executed, contract.RECORDS_DEEP),
                                     (contract.REWARD, self.on_reward, contract.RECORDS_DEEP),
                                     (contract.EPISODE_STATUS, self.on_status, None)]:
            contract.subscribe(node, self.topic(topic), callback, qos)
        if spec.environment_state:
            contract.subscribe(node, self.topic(contract.TASK_STATE), self.on_task_state, contract.LOSSLESS)
        for cam in spec.cameras:
            contract.subscribe(node, self.topic(contract.camera_image(cam)),
                               lambda msg, cam=cam: self.on_image(cam, msg), contract.SENSOR_DEEP)

    def topic(self, topic: contract.Topic) -> contract.Topic:
        return replace(topic, name=f"/{self.robot}/{topic.name}") if self.robot else topic

    @property
    def log(self):
        return self.node.get_logger()

    # ---- streams -----------------------------------------------------------------------------------------------
    def on_joints(self, msg) -> None:
        self.add_part(JOINT_STATES_STREAM, convert.from_time(msg.header.stamp), np.asarray(msg.position))

    def on_pose(self, msg) -> None:
        self.add_part(EE_POSE_STREAM, convert.from_time(msg.header.stamp), convert.msg_to_pose(msg))

    def on_task_state(self, msg: String) -> None:
        rec = decode_or_log(self.node, msg.data, records.TaskState)
        if rec is not None:
            self.add_part(TASK_STATE_STREAM, rec.stamp, rec.state)

    def on_image(self, cam: str, msg) -> None:
        try:
            frame = convert.msg_to_image(msg)
        except convert.ConversionError as err:
            self.log.error(f"{self.robot}: ignored {cam} image: {err}", throttle_duration_sec=1.0)
            return
        frame = resize_frames(frame[None], self.spec.image_size)[0]  # stored at the policy's size
        self.add_part(camera_stream(cam), convert.from_time(msg.header.stamp), frame)

    def add_part(self, stream: str, stamp: float, sample) -> None:
        try:
            self.assembler.add_part(stream, stamp, sample)
        except (KeyError, ValueError) as err:  # e.g. a task state without the object or goal
            self.log.error(f"{self.robot}: no state at t={stamp:.3f}: {err!r}", throttle_duration_sec=1.0)
        self.heard()

    def on_executed(self, msg) -> None:
        if msg.header.frame_id == "hold":  # no transition, but it shows how far the action stream has come
            self.assembler.add_hold(convert.from_time(msg.header.stamp))
            return
        try:
            chunk = convert.msg_to_chunk(msg)
        except convert.ConversionError as err:
            self.log.warning(f"{self.robot}: ignored executed action: {err}", throttle_duration_sec=1.0)
            return
        if list(chunk.names) != self.spec.action_names:
            self.log.warning(f"{self.robot}: executed action names {list(chunk.names)} differ from the policy's",
                             throttle_duration_sec=5.0)
            return
        self.assembler.add_action(chunk.stamp, chunk.points[0], is_intervention=chunk.source == "teleop")
        self.heard()

    def on_reward(self, msg: String) -> None:
        rec = decode_or_log(self.node, msg.data, records.RewardRecord)
        waiting = self.ending[0].episode if self.ending is not None else None  # ended, its last reward may be due
        if rec is not None and (self.episode is None or rec.episode in (self.episode, waiting)):  # `running` may lag
            self.assembler.add_reward(rec.stamp, rec.reward, rec.success)
            self.heard()

    def on_status(self, msg: String) -> None:
        status = decode_or_log(self.node, msg.data, records.EpisodeStatus)
        if status is None:
            return
        if status.state == "running" and status.episode != self.episode:
            self.episode, self.start_stamp = status.episode, status.stamp
            if self.ending is None:  # else the last episode's parts may still come: its finish drops what it used
                self.assembler.discard_before(status.stamp)
        elif status.state == "ended" and status.episode == self.episode:
            self.episode = None
            if self.ending is not None:  # two ended episodes waiting: the older is taken with what came
                self.end_episode()
            self.ending = (status, EndWait(self.start_stamp, status.stamp, status.expected_actions, time.monotonic()))
            self.end_when_complete()

    def heard(self) -> None:
        """A sample taken while an ended episode waits: it may be the one the episode was missing."""
        if self.ending is not None:
            self.end_when_complete()

    def end_when_complete(self) -> None:
        """Takes an ended episode when it is due (assembler.EndWait): judged by the streams' stamps, so a busy
        learner working through a backlog loses nothing, and the next episode may already be running."""
        if self.ending is not None and self.ending[1].due(self.assembler, time.monotonic()):
            self.end_episode()

    def end_episode(self) -> None:
        (status, wait), self.ending = self.ending, None
        self.on_ended(self, status, wait.start_stamp, wait.end_stamp)

    # ---- weights -----------------------------------------------------------------------------------------------
    def connected(self) -> bool:
        """Seeing a publisher is not enough: its writer may not have matched this reader yet, and what it sends until
        then is lost. Every observation part must have arrived once (the driver streams them even between episodes)."""
        topics = [self.topic(contract.EXECUTED_ACTION), self.topic(contract.REWARD)]
        return all(self.node.count_publishers(t.name) > 0 for t in topics) and self.assembler.every_stream_seen()

    def publish_weights(self, blob: bytes, version: int, stamp: float) -> None:
        self.pub_weights.publish(UInt8MultiArray(data=blob))
        rec = records.PolicyVersion(stamp=stamp, version=version, sha256=sha256_hex(blob),
                                    policy_type=self.spec.type, trained_through=self.trained_through)
        self.pub_version.publish(String(data=records.encode(rec)))
