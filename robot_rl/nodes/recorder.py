"""Recorder node: the live topics -> a LeRobot v3 dataset, one atomic commit per episode.

The node decodes messages; robot_rl.data.frame_grid puts them into frames on the `fps` grid of the robot clock, and
robot_rl.data.episode_writer writes those in a background thread (a failed write fails that episode only). A writer
backlog of more than a second of frames is reported as a warning.

With `bag: true` the raw topics also go into a rosbag2 bag (a directory: metadata.yaml and one MCAP file) under
<root>/bags/, one per recorder run (robot_rl.ros.bag).

An episode is saved once `episode/status` says it ended and its last states, actions and reward records have arrived
(at most `end_timeout_s` later), unless `recorder/discard` was called during it (the re-record button). A next
episode that begins meanwhile is taken up only then: each topic arrives in order, but under load the status of the
next episode can overtake the other topics' queues. A crash loses at most the episode being recorded. Once the writer has saved (or failed) an episode, `recorder/status` gives its
frames against the steps the arm executed, and the cause of every frame missing (the frame grid's counters).
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_rl.configs.recorder import RecorderConfig
from robot_rl.core.episodes import SaveReports, recording_accounting
from robot_rl.core.state import STATE_NAMES
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES
from robot_rl.data.episode_writer import EpisodeWriter
from robot_rl.data.frame_grid import FrameGrid
from robot_rl.data.lerobot import LeRobotWriter
from robot_rl.ros import bag, contract, convert, records
from robot_rl.ros.node_runtime import ExitRequest, declare_config, decode_or_log, run_node


class RecorderNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("recorder", **node_kwargs)
        self.cfg = cfg = declare_config(self, RecorderConfig)
        action_names = EE_SPACE_NAMES if cfg.action_space == "ee" else JOINT_SPACE_NAMES
        image_shape = (cfg.image_height, cfg.image_width, 3)
        self.writer = EpisodeWriter(partial(LeRobotWriter, Path(cfg.root), cfg.fps, STATE_NAMES, action_names,
                                            cfg.cameras, image_shape, cfg.robot_type), self.get_logger())
        self.grid = FrameGrid(cfg.fps, action_names, cfg.cameras, image_shape, cfg.stale_s, self.write_frame,
                              self.warn)
        self.episode: int | None = None
        self.ending: tuple[float, records.EpisodeStatus] | None = None   # (wall deadline, status)
        self.later: list[records.EpisodeStatus] = []   # statuses of the episodes after the one still ending
        self.task = ""
        self.discard = False
        self.queued_saves = 0
        self.saves = SaveReports()   # accounting of the saves queued, reported as the writer ends each
        self.pub_status = contract.publisher(self, contract.RECORDER_STATUS)
        self.wall_start = 0.0

        # deeper reader histories than the contract's: a burst (lockstep sim runs faster than real time) must not
        # overwrite samples the recorder has not taken yet
        contract.subscribe(self, contract.JOINT_STATES, self.on_joints, contract.LOSSLESS)
        contract.subscribe(self, contract.EE_POSE, self.on_pose, contract.LOSSLESS)
        contract.subscribe(self, contract.EXECUTED_ACTION, self.on_executed, contract.RECORDS_DEEP)
        contract.subscribe(self, contract.REWARD, self.on_reward, contract.RECORDS_DEEP)
        contract.subscribe(self, contract.EPISODE_STATUS, self.on_status)
        for cam in cfg.cameras:
            contract.subscribe(self, contract.camera_image(cam), partial(self.on_image, cam), contract.SENSOR_DEEP)
        contract.serve(self, contract.RECORDER_DISCARD, self.on_discard)
        self.bag = self.open_bag() if cfg.bag else None
        self.start_client = contract.client(self, contract.EPISODE_START) if cfg.start_episodes else None
        self.status_seen = False
        self.create_timer(0.05, self.on_timer)
        self.get_logger().info(f"recording {cfg.fps:g} fps, cameras {cfg.cameras or 'none'} into {cfg.root} "
                               f"({self.writer.dataset.num_episodes} episodes there)")

    def open_bag(self) -> bag.McapBag:
        path = Path(self.cfg.root, "bags", time.strftime("%Y%m%d-%H%M%S"))
        recording = bag.record(self, path, bag.recorded_topics(self.cfg.cameras))
        self.get_logger().info(f"raw topics -> {path}")
        return recording

    def warn(self, text: str) -> None:
        self.get_logger().warning(f"episode {self.episode}: {text}", throttle_duration_sec=1.0)

    # ---- streams ------------------------------------------------------------------------------------------------
    def on_pose(self, msg: PoseStamped) -> None:
        self.grid.add_pose(convert.from_time(msg.header.stamp), *convert.msg_to_pose(msg))

    def on_image(self, cam: str, msg: Image) -> None:
        try:
            image = convert.msg_to_image(msg)
        except convert.ConversionError as err:
            self.get_logger().error(f"camera {cam}: image rejected: {err}", throttle_duration_sec=1.0)
            return
        self.grid.add_image(cam, convert.from_time(msg.header.stamp), image)

    def on_joints(self, msg: JointState) -> None:
        self.grid.add_joint_states(convert.from_time(msg.header.stamp), msg.position)

    def on_executed(self, msg: JointTrajectory) -> None:
        try:
            chunk = convert.msg_to_chunk(msg)
        except convert.ConversionError as err:
            self.get_logger().warning(f"ignored executed action: {err}", throttle_duration_sec=1.0)
            return
        self.grid.add_action(chunk.stamp, chunk.names, chunk.points[0], chunk.source == "teleop", chunk.dt)

    def on_reward(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.RewardRecord)
        if rec is not None:
            self.grid.add_reward(rec.stamp, rec.reward, rec.success)

    def on_discard(self, _req, resp):
        if self.episode is None:
            resp.success, resp.message = False, "no episode is being recorded"
        else:
            self.discard = True
            resp.success, resp.message = True, f"episode {self.episode} will be discarded"
        return resp

    def write_frame(self, frame: dict) -> None:
        backlog = self.writer.add_frame(dict(frame, task=self.task))
        if backlog > self.cfg.fps:
            self.get_logger().warning(f"writer is {backlog} frames behind (encoding slower than {self.cfg.fps:g} "
                                      "fps); frames are queued, not dropped", throttle_duration_sec=2.0)

    # ---- episodes ---------------------------------------------------------------------------------------------
    def on_status(self, msg: String) -> None:
        status = decode_or_log(self, msg.data, records.EpisodeStatus)
        if status is None:
            return
        self.status_seen = True
        self.take(status)

    def take(self, status: records.EpisodeStatus) -> None:
        if self.ending is not None and status.episode != self.episode:
            self.later.append(status)   # after the ending one has taken its data still in flight (streams are ordered)
        else:
            self.follow(status)

    def follow(self, status: records.EpisodeStatus) -> None:
        if status.state == "running" and status.episode != self.episode:
            if self.episode is not None:   # the previous one never reported its end
                self.finish(None, "after the episode that followed began")
            if not self.cfg.num_episodes or self.queued_saves - self.writer.failed < self.cfg.num_episodes:
                self.begin(status)
        elif status.state == "ended" and status.episode == self.episode and self.ending is None:
            self.ending = (time.monotonic() + self.cfg.end_timeout_s, status)
            self.grid.end_at(status.stamp)

    def begin(self, status: records.EpisodeStatus) -> None:
        self.episode, self.task = status.episode, self.cfg.task or status.task
        self.discard, self.ending = False, None
        self.wall_start = time.monotonic()
        self.grid.begin(status.stamp)

    def finish(self, status: records.EpisodeStatus | None, cut_short: str = "") -> None:
        """Save (or discard) the episode; `cut_short` says when it was taken before all its data had arrived."""
        counts = self.grid.finish()
        outcome = status.outcome if status is not None else "unknown"
        success = {"success": True, "failure": False, "timeout": False}.get(outcome)
        summary = dict(counts, outcome=outcome, sim_s=round(status.duration_s, 2) if status else None,
                       wall_s=round(time.monotonic() - self.wall_start, 2))
        accounting = recording_accounting(self.episode, status.executed_steps if status else None, counts)
        if cut_short and accounting["cause"]:   # what was missing may have been still in flight
            accounting["cause"] += f" (taken {cut_short})"
        if self.discard:
            self.writer.discard(self.episode, "re-record")
            self.publish_status("discarded", accounting)
        else:
            self.queued_saves += 1
            self.writer.save(self.episode, success, summary)
            self.saves.queue(accounting)
        self.episode, self.ending = None, None

    def publish_status(self, state: str, accounting: dict) -> None:
        self.pub_status.publish(String(data=records.encode(records.RecorderStatus(
            stamp=self.get_clock().now().nanoseconds * 1e-9, state=state, accounting=accounting))))
        if accounting["cause"] or state != "saved":
            self.get_logger().warning(f"episode {accounting['episode']} {state}: {accounting['kept']} frames for "
                                      f"{accounting['expected']} executed steps: {accounting['cause']}")

    def inputs_ready(self) -> bool:
        """Samples of every continuous stream have arrived (so the subscriptions are matched, not just discovered),
        for the bag's raw readers too, and the per-episode topics (executed actions, rewards) have publishers."""
        bag_streams = [contract.JOINT_STATES, contract.EE_POSE] + [contract.camera_image(c) for c in self.cfg.cameras]
        return (self.status_seen and not self.grid.missing_streams()
                and (self.bag is None or {self.resolve_topic_name(t.name) for t in bag_streams} <= self.bag.received)
                and all(self.count_publishers(t.name) for t in (contract.EXECUTED_ACTION, contract.REWARD)))

    def on_timer(self) -> None:
        for state, accounting in self.saves.finished(self.writer.saved, self.writer.failed):
            self.publish_status(state, accounting)
        if self.start_client is not None and self.start_client.service_is_ready() and self.inputs_ready():
            self.start_client.call_async(Trigger.Request())
            self.start_client = None
            self.get_logger().info("every recorded stream is arriving: episode/start called")
        if self.ending is not None:
            settled = self.grid.ended and self.grid.settled(self.ending[1].stamp)
            if settled or time.monotonic() >= self.ending[0]:
                self.finish(self.ending[1], "" if settled else f"at end_timeout_s ({self.cfg.end_timeout_s:g} s)")
                later, self.later = self.later, []
                for status in later:
                    self.take(status)
        if self.cfg.num_episodes and self.writer.saved >= self.cfg.num_episodes and self.writer.done():
            self.get_logger().info(f"{self.writer.saved} episodes recorded; done")
            raise ExitRequest(0)

    def close(self) -> None:
        """Episodes that ended are written out; the one still running is dropped (as a crash would)."""
        if self.ending is not None:
            self.finish(self.ending[1], "at shutdown")
        elif self.episode is not None:
            self.writer.discard(self.episode, "still running at shutdown")
        self.writer.close()
        if self.bag is not None:
            self.bag.close()


def main(args=None) -> None:
    raise SystemExit(run_node(RecorderNode, args))


if __name__ == "__main__":
    main()
