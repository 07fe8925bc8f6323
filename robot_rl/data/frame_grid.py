"""Dataset frames from stamped streams on a fixed grid of `fps` (plain values: stamps in seconds, numpy arrays).

The grid starts at the episode's first executed action (the arm is enabled after the reset). A `joint_states`
sample at or after the next grid time opens frame t (t = its stamp); the frame is complete once the action executed
at t has arrived (executed_action stamped t; `teleop` marks an intervention) and `ee_pose` has reached t. Then:
state = observation_state(ee_pose, joint_states) at t, images = the newest frame at or before t per camera (resized to
the dataset size), reward = the reward record one action period after t (0 when none comes), done on the episode's
last frame, measured_timestamp = t since the episode's first frame (the dataset's `timestamp` is the nominal
frame_index / fps). Frames go to `on_frame` in order, as keyword arguments of LeRobotWriter.add_frame (less the task),
once their reward has come and they are surely the episode's (HOLD_S); a frame skipped (no action, no state) is
counted in the same order, so frames the episode's late end takes back are neither written nor counted.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable

import cv2
import numpy as np

from robot_rl.core.observation import StaleStream, StreamBuffer
from robot_rl.core.stamps import nearest_stamp, stamp_key
from robot_rl.core.state import observation_state

# A complete frame waits for its reward record until it comes, or until a record stamped after it has come (one
# publisher, in order: its own was lost), or at most this many wall seconds (a reward node that stopped). A lockstep
# sim on a busy machine runs many frames ahead of the reward node, so neither a bound in frames nor a short wall bound
# holds under load; the episode's end flushes what still waits (settled() first waits for the rewards up to the end)
REWARD_WAIT_S = 60.0
# Until the episode's end is known, a frame is written only once states HOLD_S (robot clock) newer than it have come:
# the `ended` status comes on its own topic, and frames opened past the end before it arrived are not the episode's
# (end_at takes them back, with the next episode's first action); nor is the last real frame then marked done too early
HOLD_S = 2.0
STATE_STREAMS = ("joint_states", "ee_pose")


class FrameGrid:
    def __init__(self, fps: float, action_names: tuple[str, ...], cameras: list[str],
                 image_shape: tuple[int, int, int], stale_s: float, on_frame: Callable[[dict], None],
                 warn: Callable[[str], None], clock: Callable[[], float] = time.monotonic, hold_s: float = HOLD_S):
        self.fps, self.period, self.hold_s = fps, 1.0 / fps, hold_s
        self.clock = clock   # wall time, for how long a frame has waited for its reward
        self.action_names, self.cameras, self.image_shape, self.stale_s = action_names, cameras, image_shape, stale_s
        self.on_frame, self.warn = on_frame, warn
        self.streams = StreamBuffer(depth=300)   # ~10 s of state at 30 Hz, kept while no episode runs too
        self.images = StreamBuffer(depth=30)
        self.joint_stamps: deque[float] = deque(maxlen=300)
        self.actions: dict[int, tuple[np.ndarray, bool, float]] = {}   # target time -> (values, teleop, dt)
        self.rewards: dict[int, tuple[float, bool]] = {}
        # ticks of actions in another action space (the joint-space hold on an episode's first tick, while recording
        # EE deltas): counted for the episode whose ticks they are when it finishes, whenever they arrived
        self.foreign: set[int] = set()
        self.newest_reward = -np.inf         # stamp of the newest reward record (they come in order, from one node)
        self.running = False
        self.ended = False                   # the episode ended: no new frames, late messages still complete some
        self.end_stamp: float | None = None  # when it ended, once told (end_at)
        self.frame_times: list[float] = []   # opened frames, waiting for their action
        self.ready: list[dict] = []          # complete (or skipped) frames, held until they may be written
        self.start_stamp = self.next_frame = 0.0
        self.origin: float | None = None    # time of the episode's first executed action: the grid's start
        self.first_t: float | None = None   # time of its first recorded frame
        self.counts: dict[str, int] = {}

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def missing_streams(self) -> list[str]:
        """The streams (state, then cameras) no sample has arrived on yet."""
        missing = [name for name in STATE_STREAMS if self.streams.newest_stamp(name) is None]
        return missing + [cam for cam in self.cameras if self.images.newest_stamp(cam) is None]

    # ---- streams ----------------------------------------------------------------------------------------------
    def add_pose(self, stamp: float, position, quat_wxyz) -> None:
        """A pose can be the last thing a frame waits for (its own topic, late under load), even the episode's last."""
        self.streams.add("ee_pose", stamp, (position, quat_wxyz))
        self.complete_frames()

    def add_image(self, cam: str, stamp: float, image: np.ndarray) -> None:
        if image.shape != self.image_shape:
            height, width, _ = self.image_shape
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        self.images.add(cam, stamp, (stamp, image))

    def add_joint_states(self, stamp: float, positions) -> None:
        """`positions`: 7 arm joints + the gripper width."""
        if self.end_stamp is not None and stamp >= self.end_stamp - 0.25 * self.period:
            self.end()   # the episode's states are all in: no frame opens at or after its end
        if len(positions) < 8:
            self.count("bad_joint_states")
            return
        self.streams.add("joint_states", stamp, np.asarray(positions[:8], dtype=float))
        self.joint_stamps.append(stamp)
        self.open_frame(stamp)

    def add_action(self, tick: float, names: tuple[str, ...], values: np.ndarray, teleop: bool, dt: float) -> None:
        """The action executed at control tick `tick` (the executed_action's stamp)."""
        if names != self.action_names:
            self.foreign.add(stamp_key(tick))
            return
        self.actions[stamp_key(tick)] = (values, teleop, dt)
        if self.running and self.origin is None and tick >= self.start_stamp - 1e-6:
            self.start_grid(tick)
        self.complete_frames()

    def add_reward(self, stamp: float, reward: float, success: bool) -> None:
        self.rewards[stamp_key(stamp)] = (reward, success)
        self.newest_reward = max(self.newest_reward, stamp)

    def settled(self, end_stamp: float) -> bool:
        """Everything of an episode that ended at `end_stamp` has arrived: the action of every frame opened before
        the end, and the reward records up to the end (one publisher, in order: none is still in flight). Under load
        the reward node lags the episode manager; finishing earlier would write those frames with reward 0."""
        tolerance = 0.25 * self.period
        return (self.newest_reward >= end_stamp - tolerance
                and not any(t < end_stamp - tolerance for t in self.frame_times))

    # ---- episodes ---------------------------------------------------------------------------------------------
    def begin(self, start_stamp: float) -> None:
        """An episode starts at `start_stamp`: older actions and rewards go; one that arrived before this call
        (on another topic than the episode's status) starts the grid."""
        self.running, self.ended, self.end_stamp, self.start_stamp = True, False, None, start_stamp
        self.origin = self.first_t = None
        self.frame_times.clear()
        self.ready.clear()
        self.counts = {}
        start = stamp_key(start_stamp) - 1
        for table in (self.actions, self.rewards):
            for key in [k for k in table if k < start]:
                del table[key]
        self.foreign = {k for k in self.foreign if k >= start}
        for key in sorted(self.actions)[:1]:
            self.start_grid(key * 1e-6)

    def end(self) -> None:
        """The episode ended: no frame opens after this; those open still complete until finish()."""
        self.ended = True

    def end_at(self, stamp: float) -> None:
        """The episode ended at `stamp` (robot clock). Under load the joint_states before it can still be on their
        way, so the grid ends once one stamped at the end has arrived (or when end() is called, at a time-out)."""
        self.end_stamp = stamp
        cut = stamp - 0.25 * self.period
        if (self.streams.newest_stamp("joint_states") or 0.0) >= cut:
            self.end()
        # frames opened at or after the end before it was known are the next episode's time (see HOLD_S): they go,
        # and the actions they took go back to it (its first action is stamped at its start, one tick later)
        self.frame_times = [t for t in self.frame_times if t < cut]
        for frame in [f for f in self.ready if f["t"] >= cut and "action_key" in f]:
            self.actions[frame["action_key"]] = (frame["action"], frame["is_intervention"], frame["dt"])
        self.ready = [f for f in self.ready if f["t"] < cut]

    def finish(self) -> dict[str, int]:
        """The episode's remaining frames go out (the last one done; frames still without an action are dropped);
        returns its counters."""
        self.complete_frames(final=True)
        last = max((i for i, frame in enumerate(self.ready) if "skip" not in frame), default=-1)
        for i, frame in enumerate(self.ready):
            self.emit(frame, done=i == last)
        self.ready.clear()
        end = np.inf if self.end_stamp is None else stamp_key(self.end_stamp - 0.25 * self.period)
        mine = {k for k in self.foreign if k < end}
        self.foreign -= mine
        if mine:
            self.count("foreign_actions", len(mine))
        self.running, self.ended, self.end_stamp, self.origin = False, False, None, None
        return self.counts

    # ---- frames -----------------------------------------------------------------------------------------------
    def start_grid(self, origin: float) -> None:
        self.origin = self.next_frame = origin
        for stamp in list(self.joint_stamps):
            self.open_frame(stamp)

    def open_frame(self, stamp: float) -> None:
        """Open a frame at this joint_states stamp if it reaches the next grid time of the running episode."""
        if self.origin is None or self.ended or stamp < self.origin - 1e-6:
            return
        tolerance = 0.25 * self.period
        if stamp < self.next_frame - tolerance:
            return
        missed = int((stamp - self.next_frame + tolerance) // self.period)
        if missed > 0:
            self.count("missed_slots", missed)
            self.warn(f"{missed} frame slot(s) without joint_states: the streams arrive slower than {self.fps:g} fps")
        self.frame_times.append(stamp)
        self.next_frame += (missed + 1) * self.period
        self.complete_frames()

    def complete_frames(self, final: bool = False) -> None:
        """Frames whose action has arrived become ready, in order; on `final` the rest are dropped."""
        while self.frame_times:
            t = self.frame_times[0]
            key = nearest_stamp(self.actions, t, 0.25 * self.period)
            late = final or any(k > stamp_key(t + 0.5 * self.period) for k in self.actions)
            pose_in = (self.streams.newest_stamp("ee_pose") or -np.inf) >= t - 1e-6
            if not late and (key is None or not pose_in):
                return   # still in flight
            self.frame_times.pop(0)
            if key is None:
                self.ready.append({"t": t, "skip": "frames_without_action"})
                continue
            action, teleop, dt = self.actions.pop(key)
            frame = {"t": t, "dt": dt, "action": action, "is_intervention": teleop, "action_key": key,
                     "ready_at": self.clock()}
            self.ready.append(frame | self.observation(t))
        # the newest written frame always stays, so the episode's end can still mark it done
        while self.ready and self.may_go(self.ready[0]) and ("skip" in self.ready[0]
                                                              or any("skip" not in f for f in self.ready[1:])):
            self.emit(self.ready.pop(0), done=False)

    def may_go(self, frame: dict) -> bool:
        """A frame is written once it is surely the episode's (HOLD_S) and its reward has come: the record stamped
        one period later, from another process, or a later one (its own was lost), or REWARD_WAIT_S went by."""
        newest_state = self.joint_stamps[-1] if self.joint_stamps else -np.inf
        if self.end_stamp is None and newest_state - frame["t"] < self.hold_s:
            return False
        return ("skip" in frame or self.reward_key(frame) is not None or self.reward_passed(frame)
                or self.clock() - frame["ready_at"] > REWARD_WAIT_S)

    def reward_passed(self, frame: dict) -> bool:
        """A reward record stamped after this frame's has come: the records arrive in order, so its own was lost."""
        return self.newest_reward > frame["t"] + 1.25 * frame["dt"]

    def reward_key(self, frame: dict) -> int | None:
        return nearest_stamp(self.rewards, frame["t"] + frame["dt"], 0.25 * frame["dt"])

    def observation(self, t: float) -> dict:
        """The frame's state and images at t, or why it is skipped."""
        try:
            obs = self.streams.assemble(t, {"joint_states": 0.0, "ee_pose": 1.5 * self.period})
            views = self.images.assemble(t, {cam: np.inf for cam in self.cameras})
        except StaleStream as err:
            self.warn(f"frame at t={t:.3f} skipped: {err}")
            return {"skip": "frames_without_state"}
        images = {cam: views.values[cam][1] for cam in self.cameras}
        stale = [f"stale_{cam}" for cam in self.cameras if t - views.values[cam][0] > self.stale_s]
        position, quat = obs.values["ee_pose"]
        return {"state": observation_state(position, quat, obs.values["joint_states"]), "images": images,
                "stale": stale}

    def emit(self, frame: dict, done: bool) -> None:
        if "skip" in frame:
            self.count(frame["skip"])
            return
        for counter in frame["stale"]:
            self.count(counter)
        if self.first_t is None:
            self.first_t = frame["t"]   # timestamps count from the first recorded frame
        key = self.reward_key(frame)
        if key is None:
            self.count("frames_without_reward")
        self.count("frames")
        self.count("interventions", int(frame["is_intervention"]))
        self.on_frame(dict(state=frame["state"], action=frame["action"], done=done,
                           reward=self.rewards.pop(key)[0] if key is not None else 0.0,
                           is_intervention=frame["is_intervention"], images=frame["images"],
                           measured_timestamp=frame["t"] - self.first_t))
