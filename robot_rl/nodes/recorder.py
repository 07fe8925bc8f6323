"""Recorder node: the live topics -> a LeRobot v3 dataset, one atomic commit per episode.

Frames sit on a fixed grid of `fps` on the robot clock, from the episode's start stamp. A `joint_states` sample at or
after the next grid time opens frame t (t = its stamp); the frame is complete once the action executed at t has
arrived on `executed_action` (its point's target time is t; source "teleop" marks an intervention). Then:
observation.state = state_vector(ee_pose, gripper, joints) at t, images = the newest frame at or before t per camera
(resized to the dataset size), next.reward = the reward record one control period after t (0 without a reward node),
next.done on the episode's last frame. Frames go to a writer thread through an unbounded queue: encoding never drops
a frame, the writer checks video frame counts against parquet rows on every save, and a backlog of more than a
second of frames is reported as a warning, as is a stream arriving slower than `fps`.

With `bag: true` the raw topics (serialized CDR, as received) also go into an MCAP file under <root>/bags/, one per
recorder run, with `ros2msg` schemas so standard MCAP tools decode it. A killed recorder leaves that file without
its summary section; MCAP readers still recover the complete chunks.

An episode is saved when `episode/status` says it ended (after `end_grace_s` for late messages), unless
`recorder/discard` was called during it (the re-record button). A crash loses at most the episode being recorded.
A write that fails (a full disk, an I/O error) fails that episode only: it is reported as FAILED and not saved, the
writer reopens the dataset from what is committed on disk, and the next episode is recorded as usual.
"""
from __future__ import annotations

import os
import queue
import re
import sys
import threading
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np
from geometry_msgs.msg import PoseStamped
from pydantic import BaseModel, Field
from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_rl.core.observation import StaleStream, StreamBuffer
from robot_rl.core.stamps import nearest_key, stamp_key
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES
from robot_rl.core.state import STATE_NAMES, state_vector
from robot_rl.data.lerobot import DatasetError, LeRobotWriter
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import ExitRequest, declare_config, decode_or_log, run_node


class RecorderConfig(BaseModel, extra="forbid"):
    root: str = Field("runs/data/recorded", description="dataset root (appended to when it exists)")
    fps: float = Field(15.0, gt=0, le=120)
    cameras: list[str] = Field([], description="recorded cameras (cameras/<name>/image_raw)")
    image_width: int = Field(128, ge=8, le=1920)
    image_height: int = Field(128, ge=8, le=1080)
    action_space: str = Field("ee", pattern="^(ee|joint)$")
    task: str = Field("", description="task text; empty: the task named by episode/status")
    robot_type: str = "panda"
    num_episodes: int = Field(0, ge=0, description="exit after saving this many (0: until stopped)")
    stale_s: float = Field(0.5, gt=0, description="an image older than this at its frame time counts as stale")
    end_grace_s: float = Field(0.5, ge=0, description="wall seconds to wait for late messages after an episode ends")
    bag: bool = Field(False, description="also write the raw topics to an MCAP bag under <root>/bags/")
    start_episodes: bool = Field(False, description="call episode/start once every recorded topic, reward "
                                                    "included, has a publisher (episode manager without autostart)")


CONFIG = RecorderConfig


PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
              "int64", "uint64", "string", "wstring"}


def msg_definition(msg_type: type) -> str:
    """The `ros2msg` schema text of a message type: its .msg file, then every nested type's, each after a line of
    80 '=' and 'MSG: pkg/Type' (the convention of rosbag2's MCAP storage)."""
    roots = [r for r in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if r] + [sys.prefix]

    def source(full: str) -> str:
        pkg, name = full.split("/")
        for root in roots:
            path = Path(root, "share", pkg, "msg", f"{name}.msg")
            if path.is_file():
                return path.read_text()
        raise FileNotFoundError(f"{pkg}/msg/{name}.msg not found under {roots}")

    def nested(full: str, text: str) -> list[str]:
        out = []
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) < 2 or "=" in words[1]:
                continue   # blank, comment or constant
            base = re.sub(r"(\[.*\]|<=\d+)$", "", words[0])
            base = re.sub(r"<=\d+$", "", base)
            if base not in PRIMITIVES:
                out.append(base if "/" in base else f"{full.split('/')[0]}/{base}")
        return out

    main = f"{msg_type.__module__.split('.')[0]}/{msg_type.__name__}"
    seen, order, todo = {main}, [], nested(main, source(main))
    while todo:
        dep = todo.pop(0).replace("/msg/", "/")
        if dep not in seen:
            seen.add(dep)
            order.append(dep)
            todo += nested(dep, source(dep))
    parts = [source(main)] + [f"{'=' * 80}\nMSG: {dep}\n{source(dep)}" for dep in order]
    return "\n".join(parts)


class McapBag:
    """Serialized messages as received, one channel per topic (CDR), zstd-compressed chunks."""

    def __init__(self, path: Path, on_error):
        from mcap.writer import CompressionType, Writer

        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("wb")
        self.writer = Writer(self.file, compression=CompressionType.ZSTD)
        self.writer.start(profile="ros2", library="robot_rl recorder")
        self.channels: dict[str, int] = {}
        self.received: set[str] = set()  # topics with at least one message written
        self.lock = threading.Lock()
        self.error: OSError | None = None   # after a failed write the bag stops (MCAP readers recover the chunks before)
        self.on_error = on_error

    def add_topic(self, topic: str, msg_type: type) -> None:
        name = f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"
        schema = self.writer.register_schema(name, "ros2msg", msg_definition(msg_type).encode())
        self.channels[topic] = self.writer.register_channel(topic, "cdr", schema)

    def write(self, topic: str, data: bytes) -> None:
        now = time.time_ns()
        with self.lock:
            if self.error is not None:
                return
            try:
                self.writer.add_message(self.channels[topic], log_time=now, data=data, publish_time=now)
                self.received.add(topic)
            except OSError as err:  # a full disk: the bag stops, the dataset and the node go on
                self.error = err
                self.on_error(err)

    def close(self) -> None:
        with self.lock:
            try:
                if self.error is None:
                    self.writer.finish()
            finally:
                self.file.close()


MAX_REWARD_LAG = 30  # frames (2 s at 15 Hz) a frame waits for its reward record before it is written with 0


def _nearest(table: dict[int, object], stamp: float, tolerance: float) -> int | None:
    return nearest_key(table, stamp_key(stamp), stamp_key(tolerance))


class RecorderNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("recorder", **node_kwargs)
        self.cfg = cfg = declare_config(self, RecorderConfig)
        self.action_names = EE_SPACE_NAMES if cfg.action_space == "ee" else JOINT_SPACE_NAMES
        self.image_shape = (cfg.image_height, cfg.image_width, 3)
        self.writer: LeRobotWriter | None = self.open_writer()   # writer thread after this; None after a failure
        self.lost: str | None = None   # writer thread: why the episode being written is lost (reported at its save)
        self.period = 1.0 / cfg.fps
        self.streams = StreamBuffer(depth=300)   # ~10 s of state at 30 Hz, kept while no episode runs too
        self.images = StreamBuffer(depth=30)
        self.joint_stamps: deque[float] = deque(maxlen=300)
        self.actions: dict[int, tuple[np.ndarray, bool, float]] = {}   # target time -> (values, teleop, dt)
        self.rewards: dict[int, tuple[float, bool]] = {}
        self.episode: int | None = None
        self.ending: tuple[float, records.EpisodeStatus] | None = None   # (wall deadline, status)
        self.frame_times: list[float] = []   # opened frames, waiting for their action
        self.ready: list[dict] = []          # complete frames, held until their reward can have arrived
        self.next_frame = 0.0
        self.start_stamp = 0.0
        self.origin: float | None = None    # time of the episode's first executed action: the frame grid's start
        self.first_t: float | None = None   # time of its first recorded frame
        self.task = ""
        self.discard = False
        self.counts: dict[str, int] = {}
        self.queued_saves = 0           # main thread
        self.saved, self.failed = 0, 0  # writer thread
        self.jobs: queue.Queue = queue.Queue()
        self.worker_idle = threading.Event()
        self.worker_idle.set()
        self.worker = threading.Thread(target=self.write_loop, name="recorder-writer", daemon=True)
        self.worker.start()

        # deeper queues than the contract's: a burst (lockstep sim runs faster than real time) must not overwrite
        # samples the recorder has not taken yet
        deep = QoSProfile(depth=200, reliability=contract.RELIABLE_10.reliability, history=contract.RELIABLE_10.history)
        self.create_subscription(JointState, contract.JOINT_STATES.name, self.on_joints, deep)
        self.create_subscription(PoseStamped, contract.EE_POSE.name, self.on_pose, deep)
        self.create_subscription(JointTrajectory, contract.EXECUTED_ACTION.name, self.on_executed, deep)
        self.create_subscription(String, contract.REWARD.name, self.on_reward, contract.REWARD.qos)
        self.create_subscription(String, contract.EPISODE_STATUS.name, self.on_status, contract.EPISODE_STATUS.qos)
        sensor = QoSProfile(depth=30, reliability=contract.SENSOR.reliability, history=contract.SENSOR.history)
        for cam in cfg.cameras:
            topic = contract.camera_image(cam)
            self.create_subscription(Image, topic.name, lambda m, c=cam: self.on_image(c, m), sensor)
        self.create_service(Trigger, "recorder/discard", self.on_discard)
        self.bag = self.open_bag() if cfg.bag else None
        self.start_client = self.create_client(Trigger, "episode/start") if cfg.start_episodes else None
        self.status_seen = False
        self.create_timer(0.05, self.on_timer)
        self.get_logger().info(f"recording {cfg.fps:g} fps, cameras {cfg.cameras or 'none'} into {cfg.root} "
                               f"({self.writer.num_episodes} episodes there)")

    def open_writer(self) -> LeRobotWriter:
        """The dataset as committed on disk (info.json is the commit record; leftovers of a failed write go)."""
        cfg = self.cfg
        return LeRobotWriter(Path(cfg.root), cfg.fps, STATE_NAMES, self.action_names, cfg.cameras, self.image_shape,
                             cfg.robot_type)

    def open_bag(self) -> McapBag:
        """Raw subscriptions (no deserialization) to every contract topic the graph may carry."""
        path = Path(self.cfg.root, "bags", time.strftime("%Y%m%d-%H%M%S") + ".mcap")
        bag = McapBag(path, lambda err: self.get_logger().error(f"bag {path} stopped: {err}"))
        topics = [contract.JOINT_STATES, contract.EE_POSE, contract.ACTION_CHUNK, contract.EXECUTED_ACTION,
                  contract.REWARD, contract.EPISODE_STATUS, contract.ARM_STATUS, contract.TELEOP_ACTIVE]
        for cam in self.cfg.cameras:
            topics += [contract.camera_image(cam), contract.camera_info(cam), contract.camera_depth(cam)]
        for topic in topics:
            name = self.resolve_topic_name(topic.name)
            bag.add_topic(name, topic.msg_type)
            # as deep as the dataset's own readers: with the contract's depth 10 a lockstep burst overwrote samples
            # before the executor took them (the bag held 20 of an episode's 42 executed actions)
            qos = QoSProfile(depth=max(topic.qos.depth, 200), reliability=topic.qos.reliability,
                             durability=topic.qos.durability, history=topic.qos.history)
            self.create_subscription(topic.msg_type, topic.name, lambda data, n=name: bag.write(n, data), qos,
                                     raw=True)
        self.get_logger().info(f"raw topics -> {path}")
        return bag

    # ---- streams ------------------------------------------------------------------------------------------------
    def on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        self.streams.add("ee_pose", convert.from_time(msg.header.stamp), ((p.x, p.y, p.z), (q.w, q.x, q.y, q.z)))

    def on_image(self, cam: str, msg: Image) -> None:
        try:
            image = convert.msg_to_image(msg)
        except convert.ConversionError as err:
            self.get_logger().error(f"camera {cam}: image rejected: {err}", throttle_duration_sec=1.0)
            return
        if image.shape != self.image_shape:
            image = cv2.resize(image, (self.cfg.image_width, self.cfg.image_height), interpolation=cv2.INTER_AREA)
        stamp = convert.from_time(msg.header.stamp)
        self.images.add(cam, stamp, (stamp, image))

    def on_joints(self, msg: JointState) -> None:
        stamp = convert.from_time(msg.header.stamp)
        if len(msg.position) < 8:
            self.count("bad_joint_states")
            return
        self.streams.add("joint_states", stamp, np.asarray(msg.position, dtype=float))
        self.joint_stamps.append(stamp)
        self.open_frame(stamp)

    def open_frame(self, stamp: float) -> None:
        """Open a frame at this joint_states stamp if it reaches the next grid time of the running episode."""
        if self.origin is None or self.ending is not None or stamp < self.origin - 1e-6:
            return
        tolerance = 0.25 * self.period
        if stamp < self.next_frame - tolerance:
            return
        missed = int((stamp - self.next_frame + tolerance) // self.period)
        if missed > 0:
            self.count("missed_slots", missed)
            self.get_logger().warning(f"episode {self.episode}: {missed} frame slot(s) without joint_states: the "
                                      f"streams arrive slower than {self.cfg.fps:g} fps", throttle_duration_sec=2.0)
        self.frame_times.append(stamp)
        self.next_frame += (missed + 1) * self.period
        self.complete_frames()

    def on_executed(self, msg: JointTrajectory) -> None:
        try:
            chunk = convert.msg_to_chunk(msg)
        except convert.ConversionError as err:
            self.get_logger().warning(f"ignored executed action: {err}", throttle_duration_sec=1.0)
            return
        if chunk.names != self.action_names:
            self.count("foreign_actions")   # e.g. a joint-space hold while recording EE deltas
            return
        target = chunk.target_time(0)
        self.actions[stamp_key(target)] = (chunk.points[0], chunk.source == "teleop", chunk.dt)
        if self.episode is not None and self.origin is None and target >= self.start_stamp - 1e-6:
            # the grid starts at the episode's first executed action (the arm is enabled after the reset)
            self.origin = self.next_frame = target
            for stamp in list(self.joint_stamps):
                self.open_frame(stamp)
        self.complete_frames()

    def on_reward(self, msg: String) -> None:
        rec = decode_or_log(self, msg.data, records.RewardRecord)
        if rec is None:
            return
        self.rewards[stamp_key(rec.stamp)] = (rec.reward, rec.success)

    def on_discard(self, _req, resp):
        if self.episode is None:
            resp.success, resp.message = False, "no episode is being recorded"
        else:
            self.discard = True
            resp.success, resp.message = True, f"episode {self.episode} will be discarded"
        return resp

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    # ---- frames ----------------------------------------------------------------------------------------------
    def complete_frames(self, final: bool = False) -> None:
        """Frames whose action has arrived become ready, in order; on `final` the rest are dropped."""
        while self.frame_times:
            t = self.frame_times[0]
            key = _nearest(self.actions, t, 0.25 * self.period)
            late = final or any(k > stamp_key(t + 0.5 * self.period) for k in self.actions)
            pose_in = (self.streams.newest_stamp("ee_pose") or -np.inf) >= t - 1e-6
            if not late and (key is None or not pose_in):
                return   # still in flight
            self.frame_times.pop(0)
            if key is None:
                self.count("frames_without_action")
                continue
            frame = self.build_frame(t, *self.actions.pop(key))
            if frame is not None:
                self.ready.append(frame)
        # a frame waits for its reward (stamped one period later, from another process) up to MAX_REWARD_LAG frames;
        # the newest frame always stays, so the episode's end can still mark it done
        while len(self.ready) > 1 and (self.reward_arrived(self.ready[0]) or len(self.ready) > MAX_REWARD_LAG):
            self.emit(self.ready.pop(0), done=False)

    def reward_arrived(self, frame: dict) -> bool:
        return _nearest(self.rewards, frame["t"] + frame["dt"], 0.25 * frame["dt"]) is not None

    def build_frame(self, t: float, action: np.ndarray, teleop: bool, dt: float) -> dict | None:
        try:
            obs = self.streams.assemble(t, {"joint_states": 0.0, "ee_pose": 1.5 * self.period})
            views = self.images.assemble(t, {c: np.inf for c in self.cfg.cameras})
        except StaleStream as err:
            self.count("frames_without_state")
            self.get_logger().warning(f"frame at t={t:.3f} skipped: {err}", throttle_duration_sec=1.0)
            return None
        images = {}
        for cam in self.cfg.cameras:
            stamp, images[cam] = views.values[cam]
            if t - stamp > self.cfg.stale_s:
                self.count(f"stale_{cam}")
        q = obs.values["joint_states"]
        pos, quat = obs.values["ee_pose"]
        return {"t": t, "dt": dt, "state": state_vector(pos, quat, q[7], q[:7]), "action": action,
                "is_intervention": teleop, "images": images}

    def emit(self, frame: dict, done: bool) -> None:
        if self.first_t is None:
            self.first_t = frame["t"]   # timestamps count from the first recorded frame
        key = _nearest(self.rewards, frame["t"] + frame["dt"], 0.25 * frame["dt"])
        reward = self.rewards.pop(key)[0] if key is not None else 0.0
        if key is None:
            self.count("frames_without_reward")
        self.count("frames")
        self.count("interventions", int(frame["is_intervention"]))
        self.jobs.put(("frame", dict(state=frame["state"], action=frame["action"], reward=reward, done=done,
                                     is_intervention=frame["is_intervention"], images=frame["images"],
                                     task=self.task, timestamp=frame["t"] - self.first_t)))
        backlog = self.jobs.qsize()
        if backlog > self.cfg.fps:
            self.get_logger().warning(f"writer is {backlog} frames behind (encoding slower than {self.cfg.fps:g} "
                                      "fps); frames are queued, not dropped", throttle_duration_sec=2.0)

    # ---- episodes ---------------------------------------------------------------------------------------------
    def on_status(self, msg: String) -> None:
        status = decode_or_log(self, msg.data, records.EpisodeStatus)
        if status is None:
            return
        self.status_seen = True
        if status.state == "running" and status.episode != self.episode:
            if self.ending is not None:
                self.finish(self.ending[1])
            elif self.episode is not None:   # the previous one never reported its end
                self.finish(None)
            if not self.cfg.num_episodes or self.queued_saves - self.failed < self.cfg.num_episodes:
                self.begin(status)
        elif status.state == "ended" and status.episode == self.episode and self.ending is None:
            self.ending = (time.monotonic() + self.cfg.end_grace_s, status)

    def begin(self, status: records.EpisodeStatus) -> None:
        self.episode, self.start_stamp = status.episode, status.stamp
        self.origin = self.first_t = None
        self.task = self.cfg.task or status.task
        self.discard, self.ending = False, None
        self.frame_times.clear()
        self.ready.clear()
        self.counts = {}
        self.wall_start = time.monotonic()
        start = stamp_key(status.stamp) - 1
        for table in (self.actions, self.rewards):
            for key in [k for k in table if k < start]:
                del table[key]
        for key in sorted(k for k in self.actions if k >= start)[:1]:   # arrived before the status
            self.origin = self.next_frame = key * 1e-6
            for stamp in list(self.joint_stamps):
                self.open_frame(stamp)

    def finish(self, status: records.EpisodeStatus | None) -> None:
        self.complete_frames(final=True)
        for i, frame in enumerate(self.ready):
            self.emit(frame, done=i == len(self.ready) - 1)
        self.ready.clear()
        outcome = status.outcome if status is not None else "unknown"
        success = {"success": True, "failure": False, "timeout": False}.get(outcome)
        summary = dict(self.counts, outcome=outcome, sim_s=round(status.duration_s, 2) if status else None,
                       wall_s=round(time.monotonic() - self.wall_start, 2))
        if self.discard:
            self.jobs.put(("discard", self.episode, "re-record"))
        else:
            self.queued_saves += 1
            self.jobs.put(("save", self.episode, success, summary))
        self.episode, self.ending, self.origin = None, None, None

    def inputs_ready(self) -> bool:
        """Samples of every continuous stream have arrived (so the subscriptions are matched, not just discovered),
        for the bag's raw readers too, and the per-episode topics (executed actions, rewards) have publishers."""
        streams = ["joint_states", "ee_pose"]
        bag_streams = [contract.JOINT_STATES, contract.EE_POSE] + [contract.camera_image(c) for c in self.cfg.cameras]
        return (self.status_seen and all(self.streams.newest_stamp(n) is not None for n in streams)
                and all(self.images.newest_stamp(c) is not None for c in self.cfg.cameras)
                and (self.bag is None or {self.resolve_topic_name(t.name) for t in bag_streams} <= self.bag.received)
                and all(self.count_publishers(t.name) for t in (contract.EXECUTED_ACTION, contract.REWARD)))

    def on_timer(self) -> None:
        if self.start_client is not None and self.start_client.service_is_ready() and self.inputs_ready():
            self.start_client.call_async(Trigger.Request())
            self.start_client = None
            self.get_logger().info("every recorded stream is arriving: episode/start called")
        if self.ending is not None and time.monotonic() >= self.ending[0]:
            self.finish(self.ending[1])
        if self.cfg.num_episodes and self.saved >= self.cfg.num_episodes and self.jobs.empty() \
                and self.worker_idle.is_set():
            self.get_logger().info(f"{self.saved} episodes recorded; done")
            raise ExitRequest(0)

    # ---- writer thread ----------------------------------------------------------------------------------------
    def write_loop(self) -> None:
        while True:
            job = self.jobs.get()
            self.worker_idle.clear()
            try:
                self.run_job(job)
            except (DatasetError, ValueError, OSError) as err:  # OSError: a full disk, an I/O error
                self.episode_failed(job, f"{type(err).__name__}: {err}")
            finally:
                if self.jobs.empty():
                    self.worker_idle.set()
            if job[0] == "stop":
                return

    def episode_failed(self, job: tuple, reason: str) -> None:
        """The episode being written is lost, never the dataset: its frames go, and the writer is reopened from disk
        at the next write (its own bookkeeping may be half-way through a save)."""
        if self.writer is not None:
            self.writer.discard_episode()
            self.writer = None
        self.lost = self.lost or reason
        if job[0] == "save":
            self.report_failed(job[1])

    def report_failed(self, episode: int) -> None:
        self.failed += 1
        self.get_logger().error(f"episode {episode} FAILED, not saved: {self.lost}; the episodes saved before it "
                                "are intact")
        self.lost = None

    def writable(self) -> LeRobotWriter:
        if self.writer is None:
            self.writer = self.open_writer()
        return self.writer

    def run_job(self, job: tuple) -> None:
        kind = job[0]
        if kind == "frame":
            if self.lost is None:   # the rest of a lost episode is not written
                self.writable().add_frame(**job[1])
        elif kind == "discard":
            if self.writer is not None:
                self.writer.discard_episode()
            self.lost = None
            self.get_logger().info(f"episode {job[1]} discarded ({job[2]})")
        elif kind == "save":
            _, episode, success, summary = job
            if self.lost is not None:
                self.report_failed(episode)
                return
            frames = self.writable().pending_frames
            if frames == 0:
                self.get_logger().warning(f"episode {episode}: no frames recorded ({summary}); nothing saved")
                self.failed += 1
                return
            start = time.monotonic()
            index = self.writer.save_episode(success=success)
            self.saved += 1
            extra = ", ".join(f"{k} {v}" for k, v in summary.items() if k != "frames" and v is not None)
            self.get_logger().info(
                f"episode {episode} -> dataset episode {index}: {frames} frames ({extra}), saved in "
                f"{time.monotonic() - start:.2f} s; dataset {self.writer.num_episodes} episodes, "
                f"{self.writer.info['total_frames']} frames")

    def close(self) -> None:
        """Episodes that ended are written out; the one still running is dropped (as a crash would)."""
        if self.ending is not None:
            self.finish(self.ending[1])
        elif self.episode is not None:
            self.jobs.put(("discard", self.episode, "still running at shutdown"))
        self.jobs.put(("stop",))
        self.worker.join(timeout=60)
        if self.writer is not None:
            self.writer.finalize()
        if self.bag is not None:
            self.bag.close()


def main(args=None) -> None:
    raise SystemExit(run_node(RecorderNode, args))


if __name__ == "__main__":
    main()
