"""The learner's episode assembler: transitions (s_t, a_t, r_{t+dt}) matched by stamp on the physics grid."""
import numpy as np

from robot_rl.rl.assembler import EpisodeAssembler

DT = 1 / 15


def tick(i: int) -> float:
    return round(i * DT / 0.002) * 0.002  # bridge ticks land on the 2 ms physics grid, not exactly on i·dt


def fill(asm: EpisodeAssembler, n: int, missing_states=(), success_at=None):
    for i in range(n + 1):
        if i not in missing_states:
            asm.add_state(tick(i), np.full(3, i, np.float32))
    for i in range(n):
        asm.add_action(tick(i + 1) - DT, np.full(2, i, np.float32), is_intervention=(i == 1))  # stamp = tick − dt
        asm.add_reward(tick(i + 1), 1.0 if i == success_at else -0.01, i == success_at)


def test_transitions_pair_state_action_and_the_next_reward():
    asm = EpisodeAssembler(DT)
    fill(asm, 6)
    ep, note = asm.finish(0.0)
    assert note == "" and len(ep.actions) == 6 and len(ep.states) == 7
    np.testing.assert_array_equal(ep.states[:, 0], np.arange(7))
    np.testing.assert_array_equal(ep.actions[:, 0], np.arange(6))
    np.testing.assert_allclose(ep.rewards, [-0.01] * 6)
    assert not ep.terminated
    assert ep.interventions.tolist() == [False, True, False, False, False, False]


def test_success_terminates_and_later_ticks_are_left_out():
    asm = EpisodeAssembler(DT)
    fill(asm, 8, success_at=3)
    ep, _ = asm.finish(0.0)
    assert ep.terminated and len(ep.actions) == 4 and ep.rewards[-1] == 1.0


def test_missing_first_states_are_skipped_and_a_later_gap_cuts_the_episode():
    asm = EpisodeAssembler(DT)
    fill(asm, 8, missing_states=(0, 1, 6))
    ep, note = asm.finish(0.0)
    np.testing.assert_array_equal(ep.actions[:, 0], [2, 3, 4])  # from the first complete tick to the gap
    assert "2 first action(s)" in note and "cut" in note
    np.testing.assert_array_equal(ep.states[:, 0], [2, 3, 4, 5])


def test_discard_before_keeps_only_the_new_episode():
    asm = EpisodeAssembler(DT)
    fill(asm, 4)
    asm.discard_before(tick(3))
    assert min(asm.states) >= round((tick(3) - DT) * 1e6)
