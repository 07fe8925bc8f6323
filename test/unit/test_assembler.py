"""The learner's episode assembler: transitions (s_t, a_t, r_{t+dt}) matched by stamp on the physics grid."""
import numpy as np
import pytest

from robot_rl.core.state import (EE_POSE_STREAM, JOINT_STATES_STREAM, TASK_STATE_STREAM, camera_stream,
                                 observation_state)
from robot_rl.core.types import CONTROL_HZ
from robot_rl.rl.assembler import END_WAIT_MAX_S, REWARD_WAIT_S, EndWait, EpisodeAssembler, RateMismatch

DT = 1 / CONTROL_HZ


def tick(i: int) -> float:
    return round(i * DT / 0.002) * 0.002  # bridge ticks land on the 2 ms physics grid, not exactly on i·dt


def fill(asm: EpisodeAssembler, n: int, missing_states=(), success_at=None, missing_rewards=(), missing_actions=()):
    for i in range(n + 1):
        if i not in missing_states:
            asm.add_state(tick(i), np.full(3, i, np.float32))
    for i in range(n):
        if i not in missing_actions:  # stamp = tick − dt
            asm.add_action(tick(i + 1) - DT, np.full(2, i, np.float32), is_intervention=(i == 1))
        if i not in missing_rewards:
            asm.add_reward(tick(i + 1), 1.0 if i == success_at else -0.01, i == success_at)


def test_transitions_pair_state_action_and_the_next_reward():
    asm = EpisodeAssembler(DT)
    fill(asm, 6)
    ep, done = asm.finish(0.0)
    assert done.note() == "" and len(ep.actions) == 6 and len(ep.states) == 7
    assert (done.actions, done.transitions, done.rewards) == (6, 6, 6)
    np.testing.assert_array_equal(ep.states[:, 0], np.arange(7))
    np.testing.assert_array_equal(ep.actions[:, 0], np.arange(6))
    np.testing.assert_allclose(ep.rewards, [-0.01] * 6)
    assert not ep.terminated
    assert ep.interventions.tolist() == [False, True, False, False, False, False]


def test_success_terminates_and_later_ticks_are_left_out():
    asm = EpisodeAssembler(DT)
    fill(asm, 8, success_at=3)
    ep, done = asm.finish(0.0)
    assert ep.terminated and len(ep.actions) == 4 and ep.rewards[-1] == 1.0
    assert (done.transitions, done.after_terminal) == (4, 4)


def test_missing_first_states_are_skipped_and_a_later_gap_cuts_the_episode():
    asm = EpisodeAssembler(DT)
    fill(asm, 8, missing_states=(0, 1, 6))
    ep, done = asm.finish(0.0)
    np.testing.assert_array_equal(ep.actions[:, 0], [2, 3, 4])  # from the first complete tick to the gap
    assert (done.without_state, done.cut) == (2, 3)
    assert "2 first action(s)" in done.note() and "cut" in done.note()
    np.testing.assert_array_equal(ep.states[:, 0], [2, 3, 4, 5])


def test_discard_before_keeps_only_the_new_episode():
    asm = EpisodeAssembler(DT)
    fill(asm, 4)
    asm.discard_before(tick(3))
    assert min(asm.states) >= round((tick(3) - DT) * 1e6)


def test_observation_parts_pair_by_stamp_into_the_state():
    asm = EpisodeAssembler(DT, environment_state=True, cameras=("front",))
    frame = np.zeros((4, 4, 3), np.uint8)
    task = {"objects": {"cube": {"pos": [0.5, 0.0, 0.02], "quat": [1.0, 0, 0, 0]}}, "goal": [0.5, 0.1, 0.2]}
    asm.add_part(JOINT_STATES_STREAM, tick(1), np.r_[np.arange(7), 0.04])
    asm.add_part(EE_POSE_STREAM, tick(1), ((0.4, 0.0, 0.3), (0.0, 1.0, 0.0, 0.0)))
    asm.add_part(TASK_STATE_STREAM, tick(1), task)
    asm.add_part(EE_POSE_STREAM, tick(2), ((0.4, 0.0, 0.3), (0.0, 1.0, 0.0, 0.0)))  # its partners never come
    assert not asm.states and not asm.every_stream_seen()
    asm.add_part(camera_stream("front"), tick(1), frame)
    assert asm.every_stream_seen() and list(asm.images) == [round(tick(1) * 1e6)]
    (state,) = asm.states.values()
    np.testing.assert_allclose(state, observation_state((0.4, 0.0, 0.3), (0.0, 1.0, 0.0, 0.0),
                                                        np.r_[np.arange(7), 0.04], task))
    asm.add_part(JOINT_STATES_STREAM, tick(20), np.zeros(8))  # more than a second later: the unmatched pose is gone
    assert round(tick(2) * 1e6) not in asm.pending[EE_POSE_STREAM]


@pytest.mark.parametrize("hz", [30.0, 7.5])
def test_actions_at_another_rate_than_the_learner_s_are_refused_naming_both(hz):
    asm = EpisodeAssembler(DT)
    for i in range(16):  # a driver at another rate, its ticks on the physics grid too
        stamp = round(i / hz / 0.002) * 0.002
        asm.add_state(stamp, np.full(3, i, np.float32))
        asm.add_action(stamp, np.zeros(2, np.float32), is_intervention=False)
    with pytest.raises(RateMismatch, match=rf"executed actions arrive at {hz:.1f} Hz, the learner is configured for "
                                           r"15\.0 Hz"):
        asm.finish(0.0)


def accounting(asm: EpisodeAssembler, expected: int) -> dict:
    """What the learner reports in learner/status: the assembly tallied against the driver's executed steps."""
    return asm.finish(0.0)[1].accounting(0, expected)


def test_accounting_names_the_cause_of_every_tick_left_out():
    complete = EpisodeAssembler(DT)
    fill(complete, 8)
    assert accounting(complete, 8) == {"episode": 0, "expected": 8, "kept": 8, "rewards": 8, "excluded": {},
                                       "dropped": {}, "lost": 0, "rewards_lost": 0, "cause": ""}
    dropped_reward = EpisodeAssembler(DT)
    fill(dropped_reward, 8, missing_rewards=(5,))   # stored with reward 0: the transition is kept, its reward lost
    report = accounting(dropped_reward, 8)
    assert (report["kept"], report["lost"], report["rewards_lost"]) == (8, 0, 1)
    assert report["cause"] == "1 kept without their reward record"
    missing_state = EpisodeAssembler(DT)
    fill(missing_state, 8, missing_states=(0,))     # the first action has no state
    report = accounting(missing_state, 8)
    assert (report["lost"], report["dropped"], report["cause"]) == (1, {"without_state": 1}, "1 without_state")
    cut = EpisodeAssembler(DT)
    fill(cut, 8, missing_states=(6,))               # a gap: the episode ends at the last complete transition
    report = accounting(cut, 8)
    assert (report["kept"], report["lost"], report["dropped"]) == (5, 3, {"cut_no_next_state": 3})
    lost_action = EpisodeAssembler(DT)
    fill(lost_action, 8, missing_actions=(7,))      # the driver executed 8, one never reached the learner
    assert accounting(lost_action, 8)["dropped"] == {"not_received": 1}
    success = EpisodeAssembler(DT)
    fill(success, 8, success_at=5)                  # after the terminal reward: left out by design, not lost
    report = accounting(success, 8)
    assert (report["kept"], report["excluded"], report["lost"], report["cause"]) == (6, {"after_terminal": 2}, 0, "")


def test_an_ended_episode_is_complete_only_once_its_last_action_next_state_and_reward_came():
    """At `ended` the last tick's parts can still be crossing DDS on their own topics: the learner waits for them."""
    asm = EpisodeAssembler(DT)
    fill(asm, 6, missing_states=(6,), missing_rewards=(5,), missing_actions=(5,))
    end = tick(5)
    assert not asm.complete(0.0, end, expected=6)  # the last action is missing
    asm.add_action(tick(5), np.full(2, 5, np.float32), is_intervention=False)
    assert not asm.complete(0.0, end, expected=6)  # its next state is missing
    asm.add_state(tick(6), np.full(3, 6, np.float32))
    assert not asm.complete(0.0, end, expected=6) and not asm.complete(0.0, end, expected=None)  # and its reward
    asm.add_reward(tick(6), -0.01, False)
    assert asm.complete(0.0, end, expected=6) and not asm.complete(0.0, end, expected=7)
    ep, done = asm.finish(0.0, end)
    assert done.note() == "" and len(ep.actions) == 6


def test_an_ended_episode_waits_for_its_backlog_by_the_streams_stamps_not_by_the_wall_clock():
    """A busy learner can take seconds to work through an episode's samples: no wall deadline may cut them. What is
    still missing once every stream has moved past the end was lost, and the wait ends then (after the reward's)."""
    asm = EpisodeAssembler(DT)
    fill(asm, 10, missing_actions=(9,))  # one action lost for good
    wait = EndWait(0.0, tick(9), expected=10, since=0.0)
    assert not wait.due(asm, now=30.0)  # the streams have not moved past the end: a backlog, however long
    asm.add_hold(tick(12))
    assert not wait.due(asm, now=30.0)  # the actions have, the observation streams not yet
    asm.add_part(JOINT_STATES_STREAM, tick(12), np.zeros(8))
    asm.add_part(EE_POSE_STREAM, tick(12), ((0.4, 0.0, 0.3), (0.0, 1.0, 0.0, 0.0)))
    assert not wait.due(asm, now=31.0) and wait.due(asm, now=31.0 + REWARD_WAIT_S + 0.1)
    assert EndWait(0.0, tick(9), expected=10, since=0.0).due(EpisodeAssembler(DT), now=END_WAIT_MAX_S + 1)
    ep, done = asm.finish(0.0, tick(9))
    assert len(ep.actions) == 9 and done.accounting(0, 10)["dropped"]["not_received"] == 1


def test_an_episode_ends_at_its_end_stamp_while_the_next_one_already_runs():
    asm = EpisodeAssembler(DT)
    fill(asm, 12)
    ep, done = asm.finish(0.0, tick(5))  # ticks 6.. belong to the next episode
    assert len(ep.actions) == 6 and done.note() == ""
    ep, _ = asm.finish(tick(7))
    np.testing.assert_array_equal(ep.actions[:, 0], [7, 8, 9, 10, 11])


def test_finishing_an_episode_keeps_the_next_episode_s_early_states():
    asm = EpisodeAssembler(DT)
    fill(asm, 4)
    for i in range(6, 9):  # the next episode's first states, before its `running`
        asm.add_state(tick(i), np.full(3, i, np.float32))
    ep, _ = asm.finish(0.0)
    assert len(ep.actions) == 4 and not asm.actions and not asm.rewards
    np.testing.assert_array_equal([asm.states[k][0] for k in sorted(asm.states)], [6, 7, 8])
