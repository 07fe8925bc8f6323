"""Simulation layer: kinematics vs Franka DH, control tracking, determinism, rendering, experts, gym env."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

from robot_rl.sim import ARM_JOINTS, Q_HOME, TASKS, PandaSim, expert_chunk  # noqa: E402
from robot_rl.sim.evaluate import run_expert_episode  # noqa: E402
from robot_rl.sim.gym_env import PandaTaskEnv, normalise_ee_delta, register_envs  # noqa: E402

# Franka Emika Panda, Craig (modified) DH: a_{i-1}, d_i, alpha_{i-1}; the 8th row is the flange.
DH_A = [0, 0, 0, 0.0825, -0.0825, 0, 0.088, 0]
DH_D = [0.333, 0, 0.316, 0, 0.384, 0, 0, 0.107]
DH_ALPHA = [0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2, 0]
SMALL_CAMERAS = {"front": (64, 48), "wrist": (32, 32)}


def dh_flange_position(q: np.ndarray) -> np.ndarray:
    transform = np.eye(4)
    for a, d, alpha, theta in zip(DH_A, DH_D, DH_ALPHA, [*q, 0.0]):
        ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
        transform = transform @ np.array([[ct, -st, 0, a], [st * ca, ct * ca, -sa, -d * sa],
                                          [st * sa, ct * sa, ca, d * ca], [0, 0, 0, 1]])
    return transform[:3, 3]


def random_configurations(sim: PandaSim, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(sim.arm_lower, sim.arm_upper, size=(n, 7))


@pytest.fixture(scope="module")
def reach_sim():
    sim = PandaSim("reach", cameras=SMALL_CAMERAS)
    yield sim
    sim.close()


def test_forward_kinematics_matches_franka_dh(reach_sim):
    sim = reach_sim
    data = mujoco.MjData(sim.model)
    for q in random_configurations(sim, 8):
        data.qpos[sim.arm_qpos] = q
        mujoco.mj_kinematics(sim.model, data)
        np.testing.assert_allclose(data.body("panda_link8").xpos, dh_flange_position(q), atol=1e-4)


def test_tcp_at_home(reach_sim):
    np.testing.assert_allclose(reach_sim.tcp_position_at(Q_HOME), [0.3069, 0.0, 0.4869], atol=1e-4)


def test_joint_target_is_tracked(reach_sim):
    sim = reach_sim
    sim.reset(0)
    target = Q_HOME + np.array([0.2, 0.15, -0.2, 0.2, 0.3, -0.2, 0.4])
    sim.set_joint_target(target, 0.03)
    sim.step(1000)  # 2 s
    np.testing.assert_allclose(sim.joint_positions()[:7], target, atol=2e-3)
    assert abs(sim.joint_positions()[7] - 0.03) < 2e-3
    assert np.abs(sim.joint_velocities()).max() < 1e-2


def test_ik_reaches_pose_within_limits(reach_sim):
    sim = reach_sim
    sim.reset(0)
    quat = np.array([0.0, 1.0, 0.0, 0.0])
    q = sim.solve_ik(np.array([0.5, 0.1, 0.2]), quat, sim.joint_positions()[:7])
    assert np.all(q >= sim.arm_lower) and np.all(q <= sim.arm_upper)
    np.testing.assert_allclose(sim.tcp_position_at(q), [0.5, 0.1, 0.2], atol=1e-3)


def test_apply_ee_delta_moves_commanded_target(reach_sim):
    sim = reach_sim
    sim.reset(1)
    start, _ = sim.commanded_ee_target()
    q, width = sim.apply_ee_delta(np.array([0.01, 0, -0.01, 0, 0, 0.05, 0.05]))
    np.testing.assert_allclose(sim.commanded_ee_target()[0], start + [0.01, 0, -0.01])
    np.testing.assert_allclose(sim.tcp_position_at(q), start + [0.01, 0, -0.01], atol=1e-3)
    assert width == pytest.approx(0.05)


def test_limits_and_names(reach_sim):
    lower, upper = reach_sim.joint_limits()
    assert lower.shape == upper.shape == (8,)
    assert (lower[7], upper[7]) == (0.0, 0.08)
    assert all(reach_sim.model.joint(j).id >= 0 for j in ARM_JOINTS)
    assert reach_sim.physics_dt == pytest.approx(0.002)


@pytest.mark.parametrize("task", TASKS)
def test_reset_is_deterministic_and_seeded(task):
    sim = PandaSim(task, cameras=SMALL_CAMERAS)
    sim.reset(7)
    state, image = sim.task_state(), sim.render("front")
    sim.step(50)
    sim.reset(7)
    assert sim.task_state() == state
    np.testing.assert_array_equal(sim.render("front"), image)
    assert sim.success() is False and state["success"] is False
    sim.reset(8)
    assert sim.task_state() != state
    sim.close()


def test_renders_have_configured_shapes(reach_sim):
    reach_sim.reset(0)
    for camera, (width, height) in SMALL_CAMERAS.items():
        image = reach_sim.render(camera)
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert image.std() > 1.0
    assert reach_sim.camera_fovy("front") > 0


@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds(task):
    sim = PandaSim(task, render=False)
    results = [run_expert_episode(sim, seed)[0] for seed in range(3)]
    assert sum(results) >= 2 if task == "peg_insert" else all(results)


def test_expert_chunk_respects_step_limits():
    sim = PandaSim("pick_lift", render=False)
    chunk = expert_chunk(sim.task_state(), 16, np.random.default_rng(0), noise=0.5)
    assert chunk.shape == (16, 7)
    assert np.linalg.norm(chunk[:, :3], axis=1).max() <= 0.01 + 1e-9
    assert np.linalg.norm(chunk[:, 3:6], axis=1).max() <= 0.06 + 1e-9
    assert chunk[:, 6].min() >= 0 and chunk[:, 6].max() <= 0.08


def test_mesh_and_primitive_variants_have_identical_kinematics():
    primitive, mesh = PandaSim("reach", render=False), PandaSim("reach", variant="mesh", render=False)
    assert primitive.model.nbody == mesh.model.nbody and primitive.model.njnt == mesh.model.njnt
    np.testing.assert_allclose(primitive.model.body_mass, mesh.model.body_mass)
    np.testing.assert_allclose(primitive.model.jnt_range, mesh.model.jnt_range)
    for q in random_configurations(primitive, 5, seed=3):
        for sim in (primitive, mesh):
            sim.data.qpos[sim.arm_qpos] = q
            mujoco.mj_kinematics(sim.model, sim.data)
        np.testing.assert_allclose(primitive.data.xpos, mesh.data.xpos, atol=1e-9)
        np.testing.assert_allclose(primitive.data.xquat, mesh.data.xquat, atol=1e-9)


def test_gym_env_passes_checker():
    env = PandaTaskEnv("reach", max_steps=20, cameras={"front": (32, 32)})
    check_env(env, skip_render_check=True)
    env.close()


def test_gym_env_expert_episode_succeeds():
    register_envs()
    register_envs()
    env = gym.make("RobotRL/PandaPickLift-v0")
    obs, info = env.reset(seed=3)
    assert obs["state"].shape == (15,) and obs["state"].dtype == np.float32
    rng = np.random.default_rng(0)
    terminated = truncated = False
    while not (terminated or truncated):
        for delta in expert_chunk(info["task_state"], 8, rng):
            obs, reward, terminated, truncated, info = env.step(normalise_ee_delta(delta))
            if terminated or truncated:
                break
    assert terminated and info["success"] and reward == 1.0
    env.close()
