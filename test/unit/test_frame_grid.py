"""FrameGrid without ROS: frames on the fps grid from the first executed action, each frame waiting for its reward
record, a missing stream reported and its frames skipped."""
from __future__ import annotations

import numpy as np
import pytest

from robot_rl.core.state import STATE_SIZE
from robot_rl.core.types import CONTROL_HZ, EE_SPACE_NAMES, JOINT_SPACE_NAMES
from robot_rl.data.frame_grid import HOLD_S, REWARD_WAIT_S, FrameGrid

FPS = CONTROL_HZ
DT = 1.0 / FPS
START = 10.0


def tick(k: int) -> float:
    """Control tick k of an episode starting at START, on the 2 ms physics grid (ticks are not exactly k·dt apart)."""
    return round((START + k * DT) / 0.002) * 0.002


class Recording:
    def __init__(self, cameras=("front",), hold_s: float = 0.0):
        self.frames, self.warnings, self.wall = [], [], 0.0
        self.grid = FrameGrid(FPS, EE_SPACE_NAMES, list(cameras), (8, 8, 3), stale_s=0.5,
                              on_frame=self.frames.append, warn=self.warnings.append, clock=lambda: self.wall,
                              hold_s=hold_s)

    def observe(self, t: float, pose: bool = True) -> None:
        for cam in self.grid.cameras:
            self.grid.add_image(cam, t, np.full((16, 16, 3), 7, np.uint8))
        if pose:
            self.grid.add_pose(t, (0.4, 0.0, 0.3 + t / 100), (1.0, 0.0, 0.0, 0.0))
        self.grid.add_joint_states(t, [0.1] * 7 + [0.04])

    def act(self, t: float, value: float = 0.001, teleop: bool = False) -> None:
        self.grid.add_action(t, EE_SPACE_NAMES, np.full(7, value), teleop, DT)

    def step(self, k: int) -> None:
        """Tick k: its state, the action executed there and its reward record (-0.01) one period later."""
        self.observe(tick(k))
        self.act(tick(k))
        self.grid.add_reward(tick(k + 1), -0.01, False)


def test_frames_land_on_the_grid_from_the_first_action():
    rec = Recording()
    rec.observe(tick(-1))   # before the episode: no frame
    rec.grid.begin(START)
    for k in range(6):
        rec.observe(tick(k))
        rec.observe(tick(k) + 0.016)   # a faster joint_states stream between the ticks opens no frame
        rec.act(tick(k), value=k / 1000, teleop=k == 2)
        rec.grid.add_reward(tick(k + 1), -0.01 * (k + 1), False)
    rec.grid.add_action(tick(6), JOINT_SPACE_NAMES, np.zeros(8), False, DT)   # another action space: ignored
    rec.grid.end()
    rec.observe(tick(6))   # after the end: no frame
    counts = rec.grid.finish()
    stamps = np.array([f["measured_timestamp"] for f in rec.frames])
    np.testing.assert_allclose(stamps * FPS, np.arange(6), atol=0.05)
    assert [f["action"][0] for f in rec.frames] == pytest.approx([k / 1000 for k in range(6)])
    assert [f["reward"] for f in rec.frames] == pytest.approx([-0.01 * (k + 1) for k in range(6)])
    assert [f["done"] for f in rec.frames] == [False] * 5 + [True]
    assert [f["is_intervention"] for f in rec.frames] == [k == 2 for k in range(6)]
    assert rec.frames[0]["state"].shape == (STATE_SIZE,) and rec.frames[0]["images"]["front"].shape == (8, 8, 3)
    assert counts == {"frames": 6, "interventions": 1, "foreign_actions": 1} and rec.warnings == []


def test_a_frame_waits_for_its_reward():
    rec = Recording(cameras=())
    rec.grid.begin(START)
    for k in range(4):
        rec.observe(tick(k))
        rec.act(tick(k))
    assert rec.frames == []   # complete, but their rewards (stamped a period later) have not arrived
    rec.grid.add_reward(tick(1), 0.5, False)
    rec.observe(tick(4))
    rec.act(tick(4))
    assert [f["reward"] for f in rec.frames] == [0.5]   # frame 0, and not frame 1 before its reward
    for k in range(5, 100):   # no reward for the others: a lockstep sim may run far ahead, the frames wait
        rec.observe(tick(k))
        rec.act(tick(k))
    assert len(rec.frames) == 1
    rec.wall += REWARD_WAIT_S + 0.1   # until REWARD_WAIT_S of wall time has gone by: then they go with 0
    rec.observe(tick(100))
    rec.act(tick(100))
    assert len(rec.frames) == 100 and rec.frames[1]["reward"] == 0.0
    counts = rec.grid.finish()
    assert counts["frames"] == 101 and counts["frames_without_reward"] == 100


def test_a_frame_whose_reward_record_was_lost_goes_once_a_later_record_came_not_after_a_wall_delay():
    """Reward records come in order from one node: a later one means this frame's was lost, however busy the machine."""
    rec = Recording(cameras=())
    rec.grid.begin(START)
    for k in range(4):
        rec.observe(tick(k))
        rec.act(tick(k))
    rec.grid.add_reward(tick(1), 0.5, False)
    rec.grid.add_reward(tick(3), 0.7, False)   # frame 1's record (stamped tick 2) never comes
    rec.observe(tick(4))
    rec.act(tick(4))
    assert [f["reward"] for f in rec.frames] == [0.5, 0.0, 0.7]   # no wall time passed (rec.wall is still 0)
    assert rec.grid.finish()["frames_without_reward"] == 3   # frame 1, and frames 3 and 4 (theirs never came)


def test_a_missing_stream_is_reported_and_its_frames_skipped():
    rec = Recording()
    assert rec.grid.missing_streams() == ["joint_states", "ee_pose", "front"]
    rec.grid.begin(START)
    for k in range(3):
        rec.observe(tick(k), pose=False)
        rec.act(tick(k))   # the next action completes the frame without its pose
    assert rec.grid.missing_streams() == ["ee_pose"]
    counts = rec.grid.finish()
    assert rec.frames == [] and counts["frames_without_state"] == 3
    assert rec.warnings and "ee_pose" in rec.warnings[0]


def test_a_skipped_slot_is_counted_and_warned():
    rec = Recording(cameras=())
    rec.grid.begin(START)
    for k in (0, 1, 3):   # the joint_states of tick 2 never came
        rec.observe(tick(k))
        rec.act(tick(k))
    counts = rec.grid.finish()
    assert counts["missed_slots"] == 1 and "slower than 15 fps" in rec.warnings[0]
    np.testing.assert_allclose([f["measured_timestamp"] * FPS for f in rec.frames], [0, 1, 3], atol=0.05)


def test_an_ended_episode_is_settled_only_once_its_late_rewards_have_arrived():
    rec = Recording()
    rec.grid.begin(START)
    for k in range(4):
        rec.observe(tick(k))
        rec.act(tick(k))
    rec.grid.end()   # the episode manager ended it at tick(4); the reward node lags behind
    assert not rec.grid.settled(tick(4))
    for k in range(4):
        rec.grid.add_reward(tick(k + 1), -0.01, False)
        assert rec.grid.settled(tick(4)) == (k == 3)
    rec.grid.finish()
    assert [f["reward"] for f in rec.frames] == pytest.approx([-0.01] * 4)


def test_the_last_frame_completes_when_its_pose_comes_after_its_action_and_the_end():
    """Under load the last tick's ee_pose (its own topic) can arrive after its action and after the episode ended,
    when no new frame opens: the pose itself completes the frame, so the episode settles without its time-out."""
    rec = Recording()
    rec.grid.begin(START)
    for k in range(3):
        rec.step(k)
    rec.observe(tick(3), pose=False)
    rec.act(tick(3))
    rec.grid.add_reward(tick(4), -0.01, False)
    rec.grid.end_at(tick(4))
    rec.observe(tick(4), pose=False)
    assert not rec.grid.settled(tick(4))   # its pose is still on its way
    rec.grid.add_pose(tick(3), (0.4, 0.0, 0.3), (1.0, 0.0, 0.0, 0.0))
    assert rec.grid.settled(tick(4))
    assert rec.grid.finish() == {"frames": 4, "interventions": 0}


def test_frames_opened_after_the_end_before_it_was_known_go_and_give_their_action_to_the_next_episode():
    """The `ended` status comes on its own topic: under load the states at and after the end (and the next
    episode's first action, stamped at its start one tick later) can arrive first. Those frames are not this
    episode's; the next episode still starts with its first action, and the last frame is the one marked done."""
    rec = Recording(cameras=(), hold_s=HOLD_S)
    rec.grid.begin(START)
    for k in range(4):
        rec.step(k)
    rec.observe(tick(4))   # the state at the end: a frame opens (the end is not known yet), a hold is executed
    rec.observe(tick(5))   # the next episode starts at tick 5 with an action there
    rec.act(tick(5), value=0.5)
    rec.grid.add_reward(tick(6), -0.02, False)
    rec.grid.end_at(tick(4))
    counts = rec.grid.finish()
    assert len(rec.frames) == 4 and rec.frames[-1]["done"] and counts == {"frames": 4, "interventions": 0}
    rec.grid.begin(tick(5))
    rec.observe(tick(6))
    rec.act(tick(6))
    rec.grid.add_reward(tick(7), -0.03, False)
    assert len(rec.frames) == 4   # held: no state HOLD_S newer has come, and the end is not known yet
    rec.grid.end_at(tick(7))
    rec.observe(tick(7))
    rec.grid.finish()
    assert [f["action"][0] for f in rec.frames[4:]] == pytest.approx([0.5, 0.001])
    assert [f["reward"] for f in rec.frames[4:]] == pytest.approx([-0.02, -0.03])


def test_a_frame_is_written_once_states_hold_s_newer_have_come():
    rec = Recording(cameras=(), hold_s=HOLD_S)
    rec.grid.begin(START)
    ticks = int(HOLD_S * FPS)
    for k in range(ticks + 2):
        rec.step(k)
        assert len(rec.frames) == max(0, k - ticks + 1)


def test_the_last_written_frame_is_marked_done_when_a_skipped_one_follows_it():
    rec = Recording(cameras=())
    rec.grid.begin(START)
    for k in range(3):
        rec.step(k)
    rec.observe(tick(3))   # no action comes for this frame: skipped
    rec.observe(tick(4))
    rec.act(tick(4) + 0.5 * DT)   # an action past it (another grid): frame 3 is late, without its action
    counts = rec.grid.finish()
    assert [f["done"] for f in rec.frames] == [False, False, True]
    assert counts["frames_without_action"] == 2 and counts["frames"] == 3


def test_a_hold_in_another_action_space_counts_for_the_episode_whose_tick_it_is_whenever_it_arrives():
    """The driver's first tick after a reset is a joint-space hold; it can arrive while the last episode still ends."""
    rec = Recording(cameras=())
    rec.grid.begin(START)
    for k in range(3):
        rec.step(k)
    rec.grid.end_at(tick(3))
    rec.grid.add_action(tick(4), JOINT_SPACE_NAMES, np.zeros(8), False, DT)   # the next episode's first tick
    rec.observe(tick(3))
    assert "foreign_actions" not in rec.grid.finish()
    rec.grid.begin(tick(4))
    for k in range(5, 7):
        rec.step(k)
    assert rec.grid.finish()["foreign_actions"] == 1
