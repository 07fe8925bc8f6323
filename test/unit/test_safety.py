"""Safety filter: every rejection rule and every clip, with bad input of each kind; it never raises."""
import numpy as np
import pytest

from robot_rl.core.safety import SafetyFilter, SafetyLimits
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES, ActionChunk

LOWER = np.array([-2.9, -1.76, -2.9, -3.07, -2.9, -0.02, -2.9, 0.0])
UPPER = np.array([2.9, 1.76, 2.9, -0.07, 2.9, 3.75, 2.9, 0.08])
HOME = np.array([0, -0.785, 0, -2.356, 0, 1.571, 0.785, 0.04])


def fk_x_from_joint1(q):
    """A stand-in kinematics for the workspace rule: x follows joint 1."""
    return np.array([0.5 + q[0], 0.0, 0.3])


@pytest.fixture
def safety():
    return SafetyFilter(SafetyLimits(), LOWER, UPPER, forward_kinematics=fk_x_from_joint1)


def ee_chunk(points, stamp=1.0):
    return ActionChunk(stamp, 0.1, EE_SPACE_NAMES, np.asarray(points, dtype=float))


def joint_chunk(points, stamp=1.0, names=JOINT_SPACE_NAMES):
    return ActionChunk(stamp, 0.1, tuple(names), np.asarray(points, dtype=float))


def small_ee(n=4):
    return np.tile([0.005, 0, 0, 0, 0, 0.01, 0.04], (n, 1))


def test_valid_chunks_pass(safety):
    assert safety.check_chunk(ee_chunk(small_ee()), 1.0, HOME).ok
    assert safety.check_chunk(joint_chunk([HOME + np.r_[[0.05] * 7, 0], HOME + np.r_[[0.1] * 7, 0]]), 1.0, HOME).ok
    assert not safety.rejections


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: ee_chunk(np.where(np.eye(4, 7, dtype=bool), np.nan, small_ee())), "non_finite"),
        (lambda: ee_chunk(np.where(np.eye(4, 7, dtype=bool), np.inf, small_ee())), "non_finite"),
        (lambda: joint_chunk([HOME], names=[f"j{i}" for i in range(8)]), "wrong_names"),
        (lambda: ActionChunk(1.0, 0.1, EE_SPACE_NAMES, np.zeros((3, 6))), "wrong_shape"),
        (lambda: ActionChunk(1.0, 0.1, EE_SPACE_NAMES, np.zeros(7)), "wrong_shape"),
        (lambda: ActionChunk(1.0, 0.1, EE_SPACE_NAMES, np.zeros((0, 7))), "wrong_length"),
        (lambda: ActionChunk(1.0, 0.1, EE_SPACE_NAMES, np.zeros((500, 7))), "wrong_length"),
        (lambda: ActionChunk(1.0, -0.1, EE_SPACE_NAMES, small_ee()), "bad_dt"),
        (lambda: ee_chunk(small_ee(), stamp=0.2), "stale"),
        (lambda: ee_chunk(np.tile([0.05, 0, 0, 0, 0, 0, 0.04], (2, 1))), "jump"),
        (lambda: ee_chunk(np.tile([0, 0, 0, 0.5, 0, 0, 0.04], (2, 1))), "jump"),
        (lambda: ee_chunk(np.tile([0, 0, 0, 0, 0, 0, 0.5], (2, 1))), "gripper_range"),
        (lambda: joint_chunk([HOME + np.r_[0.5, np.zeros(7)]]), "jump"),
        (lambda: joint_chunk([HOME + np.r_[0, 0, 0, 3.0, 0, 0, 0, 0]]), "joint_limits"),
    ],
)
def test_bad_chunks_are_rejected_with_their_reason(safety, make, reason):
    verdict = safety.check_chunk(make(), 1.0, HOME)
    assert not verdict.ok
    assert verdict.reason.startswith(reason), verdict.reason
    assert safety.rejections[reason] == 1


def test_joint_targets_outside_the_workspace_are_rejected():
    limits = SafetyLimits(workspace_max=(0.55, 0.4, 0.7))
    safety = SafetyFilter(limits, LOWER, UPPER, forward_kinematics=fk_x_from_joint1)
    path = [HOME + np.r_[0.04 * k, np.zeros(7)] for k in range(1, 4)]  # x = 0.54, 0.58, 0.62
    verdict = safety.check_chunk(joint_chunk(path), 1.0, HOME)
    assert not verdict.ok and verdict.reason.startswith("workspace")


def test_ee_step_is_clipped_to_the_limits(safety):
    delta = safety.limit_ee_delta(np.array([0.02, 0, 0, 0, 0.1, 0, 0.2]))
    assert np.linalg.norm(delta[:3]) == pytest.approx(0.01)
    assert np.linalg.norm(delta[3:6]) == pytest.approx(0.06)
    assert delta[6] == pytest.approx(0.08)
    assert safety.clips == {"ee_step": 1, "ee_rotation": 1, "gripper": 1}


def test_ee_target_is_clipped_to_the_workspace_box(safety):
    assert np.allclose(safety.limit_ee_target(np.array([1.5, -1.0, -0.2])), [0.8, -0.4, 0.0])
    assert safety.clips["workspace"] == 1


def test_joint_target_step_and_limits_are_bounded(safety):
    target = safety.limit_joint_target(HOME + np.r_[0.5, 0, 0, 0, 0, 0, 0, 0.2], HOME)
    assert target[0] == pytest.approx(HOME[0] + 0.1)
    assert target[7] == pytest.approx(0.08)
    assert safety.clips == {"joint_step": 1, "joint_limits": 1}


def test_report_lists_rejections_and_clips(safety):
    safety.check_chunk(ee_chunk(np.full((2, 7), np.nan)), 1.0, HOME)
    safety.limit_ee_delta(np.array([1.0, 0, 0, 0, 0, 0, 0.04]))
    assert safety.report() == {"rejected": {"non_finite": 1}, "clipped": {"ee_step": 1}}
