"""Learner node: POCO online fine-tuning from the live graph.

It feeds the observation streams (`joint_states`, `ee_pose`, + `sim/task_state` or camera images as the policy needs),
`executed_action` (human interventions included), `reward` and `episode/status` to the EpisodeAssembler; each ended
episode goes to the ResumableLearner, which persists it and trains on it in a worker thread (`poco.utd_ratio` updates
per step), after the episode or, with `policy_sync: continuous`, while the next ones run. The node publishes the new
weights (safetensors bytes, with the critic in best_of_n mode, + a `policy/version` record with their sha256 and the
last episode they are fully trained on) and `learner/status`, where a failed update or a refused episode shows as
`error` while the last good weights stay in service. The node can run on another host than the robot: only these
topics cross (docs/architecture.md).
"""
from __future__ import annotations

import queue
import threading
import time

import numpy as np
from rclpy.node import Node
from std_msgs.msg import String, UInt8MultiArray

from robot_rl.configs.learner import LearnerConfig
from robot_rl.core.state import EE_POSE_STREAM, JOINT_STATES_STREAM, TASK_STATE_STREAM, camera_stream
from robot_rl.policies import sha256_hex
from robot_rl.policies.encoders import resize_frames
from robot_rl.rl.assembler import END_WAIT_S, EpisodeAssembler
from robot_rl.rl.resumable import ResumableLearner, Result, Work
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, decode_or_log, run_node


class LearnerNode(Node):
    def __init__(self):
        super().__init__("learner")
        cfg = declare_config(self, LearnerConfig)
        self.learner = ResumableLearner(cfg.output_dir, cfg.checkpoint, cfg.poco, cfg.seed, cfg.dataset)
        self.publish_every = cfg.publish_every if cfg.policy_sync == "continuous" else 0
        self.trained_through = -1  # the newest episode whose updates the published weights hold
        spec = self.learner.policy.spec
        self.assembler = EpisodeAssembler(1.0 / cfg.control_hz, spec.environment_state, spec.cameras)
        self.work: queue.Queue[Work] = queue.Queue()  # the updates owed, first those the learner died before
        for work in self.learner.untrained:
            self.work.put(work)
        self.results: queue.Queue[str | Result] = queue.Queue()  # the worker's news: a state or a Result
        self.episode, self.start_stamp = None, 0.0  # the running episode, and its start
        self.ending: tuple[records.EpisodeStatus, float] | None = None  # an ended episode's status, and its deadline
        self.state, self.message, self.last_row = "warming_up", "", {}
        self.last_accounting: dict | None = None  # the newest ended episode's (core.episodes.tally)

        self.pub_weights = contract.publisher(self, contract.POLICY_WEIGHTS)
        self.pub_version = contract.publisher(self, contract.POLICY_VERSION)
        self.pub_status = contract.publisher(self, contract.LEARNER_STATUS)
        contract.subscribe(self, contract.JOINT_STATES, self.on_joints, contract.LOSSLESS)
        contract.subscribe(self, contract.EE_POSE, self.on_pose, contract.LOSSLESS)
        contract.subscribe(self, contract.EXECUTED_ACTION, self.on_executed, contract.LOSSLESS)
        contract.subscribe(self, contract.REWARD, self.on_reward, contract.LOSSLESS)
        contract.subscribe(self, contract.EPISODE_STATUS, self.on_status)
        if spec.environment_state:
            contract.subscribe(self, contract.TASK_STATE, self.on_task_state, contract.LOSSLESS)
        for cam in spec.cameras:
            contract.subscribe(self, contract.camera_image(cam), lambda msg, cam=cam: self.on_image(cam, msg),
                               contract.SENSOR_DEEP)
        contract.serve(self, contract.LEARNER_SAVE, self.on_save)
        self.create_timer(0.05, self.drain_results)
        self.create_timer(0.02, self.end_when_complete)
        threading.Thread(target=self.worker, daemon=True).start()
        # announce the weights (which lets the episode manager start) only once the streams the learner records are
        # discovered: an episode that began before would reach the learner without its first states, or not at all
        self.announce_timer = self.create_timer(0.1, self.announce_when_connected)
        self.publish_status()
        self.get_logger().info(f"learner up: {self.learner.summary()}, mode {cfg.poco.mode}")

    # ---- streams -----------------------------------------------------------------------------------------------
    def on_joints(self, msg) -> None:
        self.add_part(JOINT_STATES_STREAM, convert.from_time(msg.header.stamp), np.asarray(msg.position))

    def on_pose(self, msg) -> None:
        self.add_part(EE_POSE_STREAM, convert.from_time(msg.header.stamp), convert.msg_to_pose(msg))

    def on_task_state(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.TaskState)
        if rec is not None:
            self.add_part(TASK_STATE_STREAM, rec.stamp, rec.state)

    def on_image(self, cam: str, msg) -> None:
        try:
            frame = convert.msg_to_image(msg)
        except convert.ConversionError as err:
            self.get_logger().error(f"ignored {cam} image: {err}", throttle_duration_sec=1.0)
            return
        frame = resize_frames(frame[None], self.learner.policy.spec.image_size)[0]  # stored at the policy's size
        self.add_part(camera_stream(cam), convert.from_time(msg.header.stamp), frame)

    def add_part(self, stream: str, stamp: float, sample) -> None:
        try:
            self.assembler.add_part(stream, stamp, sample)
        except (KeyError, ValueError) as err:  # e.g. a task state without the object or goal
            self.get_logger().error(f"no state at t={stamp:.3f}: {err!r}", throttle_duration_sec=1.0)

    def on_executed(self, msg) -> None:
        if msg.header.frame_id == "hold":  # kept even before `running` arrives; the episode start trims them
            return
        try:
            chunk = convert.msg_to_chunk(msg)
        except convert.ConversionError as err:
            self.get_logger().warning(f"ignored executed action: {err}", throttle_duration_sec=1.0)
            return
        if list(chunk.names) != self.learner.policy.spec.action_names:
            self.get_logger().warning(f"executed action names {list(chunk.names)} differ from the policy's",
                                      throttle_duration_sec=5.0)
            return
        self.assembler.add_action(chunk.stamp, chunk.points[0], is_intervention=chunk.source == "teleop")

    def on_reward(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.RewardRecord)
        if rec is not None and (self.episode is None or rec.episode == self.episode):  # `running` may come later
            self.assembler.add_reward(rec.stamp, rec.reward, rec.success)

    def on_status(self, msg: String) -> None:
        status = decode_or_log(self, msg.data, records.EpisodeStatus)
        if status is None:
            return
        if status.state == "running" and status.episode != self.episode:
            if self.ending is not None:  # the next episode began: the last one is kept with what came
                self.end_episode()
            self.episode, self.start_stamp = status.episode, status.stamp
            self.assembler.discard_before(status.stamp)
        elif status.state == "ended" and status.episode == self.episode:
            self.episode, self.ending = None, (status, time.monotonic() + END_WAIT_S)
            self.end_when_complete()

    def end_when_complete(self) -> None:
        """An ended episode is stored once its last action, next state and reward are in, or at the deadline."""
        if self.ending is not None and (time.monotonic() > self.ending[1] or self.assembler.complete(
                self.start_stamp, self.ending[0].expected_actions)):
            self.end_episode()

    # ---- learning ----------------------------------------------------------------------------------------------
    def end_episode(self) -> None:
        status, self.ending = self.ending[0], None
        expected = status.expected_actions
        work, self.last_accounting = self.learner.take_episode(self.assembler, self.start_stamp, status.episode,
                                                               status.outcome, expected)
        if self.last_accounting["cause"]:
            self.get_logger().warning(f"episode {status.episode}: {self.last_accounting['kept']} transitions of "
                                      f"{expected} executed steps: {self.last_accounting['cause']}")
        self.work.put(work)
        self.publish_status()

    def worker(self) -> None:
        """Runs the updates off the ROS thread, so transitions keep arriving while the learner trains."""
        error = self.learner.warm_up_critic()
        self.results.put(Result(b"", self.learner.version, error=error) if error else "waiting")
        while True:
            work = self.work.get()
            if work.steps:
                self.results.put("training")
            for result in self.learner.run(work, self.publish_every):
                self.results.put(result)

    def drain_results(self) -> None:
        """The worker's news (a new state, or a Result) reported from the ROS thread."""
        while not self.results.empty():
            news = self.results.get()
            if isinstance(news, str):
                self.state = news
            else:
                self.report(news)
            self.publish_status()

    def report(self, result: Result) -> None:
        if result.error:
            self.state, self.message = "error", result.error
            self.get_logger().error(result.error)
        elif result.row:
            row = result.row
            self.state, self.last_row, self.message = "waiting", row, ""
            self.get_logger().info(f"episode {row['episode']} ({row['outcome']}): {row['steps']} updates, "
                                   f"version {row['version']}, q_clip_ratio {row.get('q_clip_ratio', np.nan):.2f}")
        if result.trained_through is not None:
            self.trained_through = max(self.trained_through, result.trained_through)
        if result.weights:
            self.publish_weights(result.weights, result.version)

    def publish_status(self) -> None:
        rec = records.LearnerStatus(stamp=self.now(), state=self.state, version=self.learner.version,
                                    updates=self.learner.poco.updates, store_steps=len(self.learner.store),
                                    online_episodes=self.learner.online_episodes,
                                    message=self.message.split("\n")[0], last_episode=self.last_row,
                                    last_accounting=self.last_accounting)
        self.pub_status.publish(String(data=records.encode(rec)))

    def announce_when_connected(self) -> None:
        """Seeing a publisher is not enough: its writer may not have matched this reader yet, and what it sends until
        then is lost. Every observation part must have arrived once (the driver streams them even between episodes)."""
        topics = [contract.EXECUTED_ACTION, contract.REWARD]
        if all(self.count_publishers(t.name) > 0 for t in topics) and self.assembler.every_stream_seen():
            self.announce_timer.cancel()
            self.publish_weights(self.learner.last_blob, self.learner.version)

    def publish_weights(self, blob: bytes, version: int) -> None:
        self.pub_weights.publish(UInt8MultiArray(data=blob))
        rec = records.PolicyVersion(stamp=self.now(), version=version, sha256=sha256_hex(blob),
                                    policy_type=self.learner.policy.spec.type, trained_through=self.trained_through)
        self.pub_version.publish(String(data=records.encode(rec)))

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_save(self, _req, resp):
        resp.success, resp.message = self.close(), str(self.learner.state_dir)
        return resp

    def close(self) -> bool:
        """Saves the learner (run_node calls this on shutdown), except weights that are not finite."""
        if not self.learner.save():
            self.get_logger().error("not saving the learner: its weights are not finite (last good checkpoint kept)")
            return False
        return True


def main(args=None) -> None:
    raise SystemExit(run_node(LearnerNode, args))


if __name__ == "__main__":
    main()
