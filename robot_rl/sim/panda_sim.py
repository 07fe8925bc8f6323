"""PandaSim: the MuJoCo Franka + task scene behind the ROS bridge node and the gymnasium envs."""
from __future__ import annotations

import mujoco
import numpy as np

from robot_rl.core.rotations import integrate_ee_delta
from robot_rl.sim.robot import (
    ARM_JOINTS, FINGER_JOINTS, GRIPPER, MAX_GRIPPER_WIDTH, Q_HOME, TCP_SITE, build_spec,
)
from robot_rl.sim.tasks import make_task

DEFAULT_CAMERAS: dict[str, tuple[int, int]] = {"front": (128, 128), "wrist": (128, 128)}
HOME_NOISE = 0.03          # rad, uniform joint noise at reset
IK_DAMPING = 1e-2
IK_ITERATIONS = 30
IK_TOLERANCE = 1e-4
IK_NULLSPACE_GAIN = 0.05   # pull toward Q_HOME in the Jacobian's null space


def _quat_error(target_wxyz: np.ndarray, current_wxyz: np.ndarray) -> np.ndarray:
    """Axis-angle (base frame) rotating `current` onto `target`."""
    conj = np.zeros(4)
    mujoco.mju_negQuat(conj, current_wxyz)
    diff = np.zeros(4)
    mujoco.mju_mulQuat(diff, target_wxyz, conj)
    err = np.zeros(3)
    mujoco.mju_quat2Vel(err, diff, 1.0)
    return err


class PandaSim:
    """A Franka Panda on a table with one task's objects, joint position control at 500 Hz physics."""

    def __init__(self, task: str = "reach", variant: str = "primitive",
                 cameras: dict[str, tuple[int, int]] | None = None, render: bool = True):
        self.task_name = task
        self.task = make_task(task)
        spec = build_spec(variant)
        self.task.build(spec)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.task.bind(self.model)
        self.cameras = dict(DEFAULT_CAMERAS if cameras is None else cameras)   # name -> (width, height)
        self.render_enabled = render
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._scratch = mujoco.MjData(self.model)  # IK / FK without touching the simulation state
        m = self.model
        self.arm_qpos = np.array([m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS])
        self.arm_dof = np.array([m.jnt_dofadr[m.joint(j).id] for j in ARM_JOINTS])
        self.finger_qpos = np.array([m.jnt_qposadr[m.joint(j).id] for j in FINGER_JOINTS])
        self.finger_dof = np.array([m.jnt_dofadr[m.joint(j).id] for j in FINGER_JOINTS])
        self.arm_ctrl = np.array([m.actuator(j).id for j in ARM_JOINTS])
        self.gripper_ctrl = m.actuator(GRIPPER).id
        self.tcp_id = m.site(TCP_SITE).id
        self.arm_lower, self.arm_upper = m.jnt_range[[m.joint(j).id for j in ARM_JOINTS]].T.copy()
        self._target_pos = np.zeros(3)
        self._target_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self.reset(0)

    # ---- time and stepping ---------------------------------------------------------------------------------
    @property
    def physics_dt(self) -> float:
        return float(self.model.opt.timestep)

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self, seed: int) -> None:
        """Home pose with small seeded joint noise, open gripper, task randomisation; same seed, same state."""
        rng = np.random.default_rng(seed)
        mujoco.mj_resetData(self.model, self.data)
        q = np.clip(Q_HOME + rng.uniform(-HOME_NOISE, HOME_NOISE, 7), self.arm_lower, self.arm_upper)
        self.data.qpos[self.arm_qpos] = q
        self.data.qpos[self.finger_qpos] = MAX_GRIPPER_WIDTH / 2
        self.task.reset(self.data, rng)
        mujoco.mj_forward(self.model, self.data)
        self.set_joint_target(q, MAX_GRIPPER_WIDTH)
        self.set_commanded_ee_target(*self.ee_pose())

    def step(self, n: int = 1) -> None:
        """n physics steps holding the current actuator targets."""
        for _ in range(n):
            mujoco.mj_step(self.model, self.data)

    def set_joint_target(self, q: np.ndarray, gripper_width: float) -> None:
        self.data.ctrl[self.arm_ctrl] = np.clip(q, self.arm_lower, self.arm_upper)
        self.data.ctrl[self.gripper_ctrl] = float(np.clip(gripper_width, 0.0, MAX_GRIPPER_WIDTH))

    # ---- measurements --------------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        """7 arm joints and the gripper width (m)."""
        width = float(np.clip(self.data.qpos[self.finger_qpos].sum(), 0.0, MAX_GRIPPER_WIDTH))
        return np.append(self.data.qpos[self.arm_qpos], width)

    def joint_velocities(self) -> np.ndarray:
        return np.append(self.data.qvel[self.arm_dof], self.data.qvel[self.finger_dof].sum())

    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        return np.append(self.arm_lower, 0.0), np.append(self.arm_upper, MAX_GRIPPER_WIDTH)

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and orientation (wxyz) in the base frame (= world: the base sits at the origin)."""
        return self._site_pose(self.data)

    def _site_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, data.site_xmat[self.tcp_id])
        return data.site_xpos[self.tcp_id].copy(), quat

    def tcp_position_at(self, q: np.ndarray) -> np.ndarray:
        """Forward kinematics of the TCP for arm joints q (extra entries, e.g. the gripper, are ignored)."""
        self._scratch.qpos[self.arm_qpos] = np.asarray(q)[:7]
        mujoco.mj_kinematics(self.model, self._scratch)
        return self._scratch.site_xpos[self.tcp_id].copy()

    def camera_fovy(self, camera: str) -> float:
        """Vertical field of view in degrees."""
        return float(self.model.cam_fovy[self.model.camera(camera).id])

    # ---- IK and EE-delta control ---------------------------------------------------------------------------
    def solve_ik(self, pos: np.ndarray, quat_wxyz: np.ndarray, q_init: np.ndarray) -> np.ndarray:
        """Damped least squares on the TCP site (position + orientation), clamped to the joint limits."""
        data = self._scratch
        data.qpos[:] = self.data.qpos
        q = np.clip(np.asarray(q_init, dtype=float)[:7], self.arm_lower, self.arm_upper)
        jac = np.zeros((6, self.model.nv))
        for _ in range(IK_ITERATIONS):
            data.qpos[self.arm_qpos] = q
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            cur_pos, cur_quat = self._site_pose(data)
            err = np.concatenate([pos - cur_pos, _quat_error(np.asarray(quat_wxyz, dtype=float), cur_quat)])
            if np.linalg.norm(err) < IK_TOLERANCE:
                break
            mujoco.mj_jacSite(self.model, data, jac[:3], jac[3:], self.tcp_id)
            j = jac[:, self.arm_dof]
            j_pinv = j.T @ np.linalg.inv(j @ j.T + IK_DAMPING**2 * np.eye(6))
            nullspace = (np.eye(7) - j_pinv @ j) @ (Q_HOME - q) * IK_NULLSPACE_GAIN
            q = np.clip(q + j_pinv @ err + nullspace, self.arm_lower, self.arm_upper)
        return q

    def commanded_ee_target(self) -> tuple[np.ndarray, np.ndarray]:
        return self._target_pos.copy(), self._target_quat.copy()

    def set_commanded_ee_target(self, pos: np.ndarray, quat_wxyz: np.ndarray) -> None:
        self._target_pos = np.asarray(pos, dtype=float).copy()
        quat = np.asarray(quat_wxyz, dtype=float)
        self._target_quat = quat / np.linalg.norm(quat)

    def apply_ee_delta(self, delta7: np.ndarray, clip_position=None) -> tuple[np.ndarray, float]:
        """Add an EE delta (m, rad axis-angle, base frame) to the commanded TCP target and return its IK joint
        target plus the (absolute) gripper width; the caller applies them with `set_joint_target`.
        `clip_position` (e.g. the safety filter's workspace box) bounds the new target position before IK."""
        delta7 = np.asarray(delta7, dtype=float)
        pos, quat = integrate_ee_delta(self._target_pos, self._target_quat, delta7)
        self.set_commanded_ee_target(pos if clip_position is None else clip_position(pos), quat)
        q = self.solve_ik(self._target_pos, self._target_quat, self.data.qpos[self.arm_qpos])
        return q, float(np.clip(delta7[6], 0.0, MAX_GRIPPER_WIDTH))

    # ---- task ----------------------------------------------------------------------------------------------
    def task_state(self) -> dict:
        """JSON-serialisable privileged state: what the scripted expert (and reward code) needs."""
        pos, quat = self.ee_pose()
        return {
            "task": self.task_name,
            "ee_pos": [float(v) for v in pos],
            "ee_quat": [float(v) for v in quat],
            "gripper_width": float(self.joint_positions()[7]),
            **self.task.state(self.data),
            "success": self.success(),
        }

    def success(self) -> bool:
        return self.task.success(self.data, self.ee_pose()[0])

    # ---- rendering -----------------------------------------------------------------------------------------
    def render(self, camera: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB from a named camera; renderers are created on first use and reused."""
        if not self.render_enabled:
            raise RuntimeError("PandaSim was created with render=False")
        width, height = self.cameras[camera]
        renderer = self._renderers.get((width, height))
        if renderer is None:
            renderer = self._renderers[(width, height)] = mujoco.Renderer(self.model, height, width)
        renderer.update_scene(self.data, camera)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
