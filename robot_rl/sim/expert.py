"""Scripted experts that act from the JSON task state alone (numpy only, no MuJoCo).

`expert_chunk` rolls a simple kinematic model forward inside the chunk: the TCP moves by each delta, the gripper
moves toward its command at a bounded speed and stops on a held object, a held object moves with the TCP and a
pushed cube is carried along the push direction. Each phase is decided from the (predicted) geometry, so the
expert needs no memory between chunks and recovers when a grasp or push fails.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_STEP_M = 0.01
MAX_STEP_RAD = 0.06
OPEN_WIDTH = 0.08
GRIPPER_SPEED = 0.02                      # m of width per control step in the kinematic model
Q_DOWN = np.array([0.0, 1.0, 0.0, 0.0])   # TCP orientation at home: gripper pointing down, fingers along base y
FINGER_HALF_THICKNESS = 0.012             # finger pad half-size along the hand x axis
HOVER = 0.08                              # approach height above the grasp point
HESITATION_RATE = 0.25                    # chance per chunk (times noise) of a pause at the start of the chunk


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw])


def _axis_angle_to_quat(v: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(v)
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * v / angle])


def _quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    q = q if q[0] >= 0 else -q
    sin_half = np.linalg.norm(q[1:])
    if sin_half < 1e-12:
        return np.zeros(3)
    return 2 * np.arctan2(sin_half, q[0]) * q[1:] / sin_half


def _conj(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


def _yaw(q: np.ndarray) -> float:
    """Heading of the frame's x axis in the base xy plane."""
    w, x, y, z = q
    return float(np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z)))


def _wrap(angle: float, period: float) -> float:
    """angle mapped into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


def _clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    norm = np.linalg.norm(v)
    return v * (limit / norm) if norm > limit else v


@dataclass
class _Model:
    """The part of the task state the expert uses, updated by the kinematic rollout."""

    task: str
    ee: np.ndarray
    quat: np.ndarray
    width: float
    obj: np.ndarray | None
    obj_yaw: float
    goal: np.ndarray
    half: np.ndarray          # object half sizes (x, y, z)

    @classmethod
    def from_state(cls, s: dict) -> "_Model":
        objects = s.get("objects", {})
        obj = next(iter(objects.values()), None)
        if "peg_half_size" in s:
            half = np.array(s["peg_half_size"])
        else:
            half = np.full(3, s.get("object_half_size", 0.0))
        return cls(task=s["task"], ee=np.array(s["ee_pos"], float), quat=np.array(s["ee_quat"], float),
                   width=float(s["gripper_width"]), obj=None if obj is None else np.array(obj["pos"], float),
                   obj_yaw=0.0 if obj is None else _yaw(np.array(obj["quat"], float)),
                   goal=np.array(s["goal"], float), half=half)

    @property
    def grasp_point(self) -> np.ndarray:
        """Where the TCP goes to grasp: cube centre, or 2 cm below the peg top."""
        offset = self.half[2] - 0.02 if self.task == "peg_insert" else 0.0
        return self.obj + [0.0, 0.0, offset]

    @property
    def held(self) -> bool:
        """Fingers closed on the object (geometric test, robust to contact flicker)."""
        if self.obj is None:
            return False
        size = 2 * self.half[0]
        offset = self.grasp_point - self.ee  # a peg may slide up in the fingers when it touches the fixture
        return size - 0.01 <= self.width <= size + 0.004 and np.linalg.norm(offset[:2]) < 0.02 and abs(offset[2]) < 0.04


def _pick(m: _Model) -> tuple[np.ndarray, float]:
    """Move above the object, descend open, close; returns (translation wish, gripper width command)."""
    grasp = m.grasp_point
    xy_err = grasp[:2] - m.ee[:2]
    z_err = grasp[2] - m.ee[2]
    if np.linalg.norm(xy_err) < 0.008 and abs(z_err) < 0.008:
        if m.width >= 2 * m.half[0] - 0.01:
            return np.r_[xy_err, z_err], 0.0
        return np.zeros(3), OPEN_WIDTH  # closed past the object: missed it, open and try again
    if np.linalg.norm(xy_err) < 0.01 and abs(_wrap(m.obj_yaw - _yaw(m.quat), np.pi / 2)) < 0.1:
        return np.r_[xy_err, z_err], OPEN_WIDTH
    if m.ee[2] < grasp[2] + HOVER / 2 and np.linalg.norm(xy_err) > 0.02:
        return np.array([0.0, 0.0, grasp[2] + HOVER - m.ee[2]]), OPEN_WIDTH
    return np.r_[xy_err, grasp[2] + HOVER - m.ee[2]], OPEN_WIDTH


def _push_geometry(m: _Model) -> tuple[np.ndarray, float, float]:
    """Push direction (unit xy), signed position of the TCP along it and across it, relative to the cube."""
    to_goal = m.goal[:2] - m.obj[:2]
    direction = to_goal / max(np.linalg.norm(to_goal), 1e-9)
    rel = m.ee[:2] - m.obj[:2]
    return direction, float(rel @ direction), float(rel @ np.array([-direction[1], direction[0]]))


def _pushing(m: _Model) -> bool:
    _, along, across = _push_geometry(m)
    return m.ee[2] < 0.04 and along < -(m.half[0] + 0.005) and abs(across) < 0.02


def _plan(m: _Model) -> tuple[np.ndarray, float, float]:
    """(translation wish, gripper width, yaw change wish) for the current model state."""
    ee_yaw = _yaw(m.quat)
    if m.task == "reach":
        return m.goal - m.ee, OPEN_WIDTH, _wrap(-ee_yaw, 2 * np.pi)
    if m.task == "push":
        direction, _, _ = _push_geometry(m)
        yaw_change = _wrap(np.arctan2(direction[1], direction[0]) - ee_yaw, np.pi)
        contact = m.half[0] + FINGER_HALF_THICKNESS
        push_z = m.obj[2] - m.half[2] + 0.02
        if _pushing(m):
            end = m.goal[:2] - direction * contact
            return np.r_[end - m.ee[:2], push_z - m.ee[2]], 0.0, yaw_change
        start = m.obj[:2] - direction * (contact + 0.02)
        if np.linalg.norm(start - m.ee[:2]) > 0.015:
            if m.ee[2] < m.obj[2] + m.half[2] + 0.03:
                return np.array([0.0, 0.0, 0.1 - m.ee[2]]), 0.0, yaw_change
            return np.r_[start - m.ee[:2], 0.1 - m.ee[2]], 0.0, yaw_change
        return np.r_[start - m.ee[:2], push_z - m.ee[2]], 0.0, yaw_change
    grasp_yaw_change = _wrap(m.obj_yaw - ee_yaw, np.pi / 2)
    if m.task == "pick_lift":
        if m.held:
            return np.array([0.0, 0.0, m.half[2] + 0.15 - m.ee[2]]), 0.0, 0.0
        move, width = _pick(m)
        return move, width, grasp_yaw_change
    if m.task == "peg_insert":
        if not m.held:
            move, width = _pick(m)
            return move, width, grasp_yaw_change
        bottom = m.obj[2] - m.half[2]
        top = m.goal[2]
        xy_err = m.goal[:2] - m.obj[:2]
        align_yaw = -_wrap(m.obj_yaw, np.pi / 2)
        inserting = bottom < top + 0.01 and np.linalg.norm(xy_err) < 0.008
        aligned = np.linalg.norm(xy_err) < 0.003 and abs(align_yaw) < 0.05
        if inserting or aligned:
            return np.r_[xy_err, top - 0.035 - bottom], 0.0, align_yaw
        if bottom < top + 0.015 and np.linalg.norm(xy_err) > 0.01:
            return np.array([0.0, 0.0, top + 0.03 - bottom]), 0.0, align_yaw
        return np.r_[xy_err, top + 0.025 - bottom], 0.0, align_yaw
    raise ValueError(f"no expert for task {m.task!r}")


def _rotation_toward(m: _Model, yaw_change: float) -> np.ndarray:
    """Axis-angle that turns the TCP toward pointing down with heading changed by `yaw_change`."""
    target = _quat_mul(_axis_angle_to_quat(np.array([0.0, 0.0, _yaw(m.quat) + yaw_change])), Q_DOWN)
    return _quat_to_axis_angle(_quat_mul(target, _conj(m.quat)))


def _advance(m: _Model, delta: np.ndarray) -> None:
    """Kinematic prediction of the state after executing `delta`."""
    was_held, was_pushing = m.held, m.task == "push" and _pushing(m)
    m.ee = m.ee + delta[:3]
    m.quat = _quat_mul(_axis_angle_to_quat(delta[3:6]), m.quat)
    m.quat /= np.linalg.norm(m.quat)
    if was_held:
        m.obj = m.obj + delta[:3]
        m.obj_yaw += float(delta[5])
    elif was_pushing:
        direction, along, _ = _push_geometry(m)
        overlap = along + m.half[0] + FINGER_HALF_THICKNESS
        if overlap > 0:
            m.obj = m.obj + np.r_[direction * overlap, 0.0]
    width = float(np.clip(delta[6], m.width - GRIPPER_SPEED, m.width + GRIPPER_SPEED))
    object_between_fingers = m.obj is not None and np.linalg.norm(m.grasp_point - m.ee) < 0.015
    if object_between_fingers and delta[6] < m.width:  # closing fingers stop on the object
        width = max(width, min(m.width, 2 * m.half[0]))
    m.width = width


def expert_chunk(task_state: dict, horizon: int, rng: np.random.Generator, noise: float = 0.0) -> np.ndarray:
    """(horizon, 7) EE-delta actions (m, rad axis-angle, absolute gripper width) of the scripted expert.

    `noise` is the std of Gaussian noise on each delta as a fraction of the step limit (also on the gripper
    width), drawn per step and, once more, as a bias held for the whole chunk; with noise > 0 a chunk sometimes
    starts with a seeded hesitation (a few zero-motion steps).
    """
    m = _Model.from_state(task_state)
    pause = int(rng.integers(2, 7)) if noise > 0 and rng.random() < HESITATION_RATE * noise else 0
    bias = np.r_[rng.normal(0.0, noise * MAX_STEP_M, 3), rng.normal(0.0, noise * MAX_STEP_RAD, 3)] if noise > 0 else 0
    actions = np.zeros((horizon, 7))
    for t in range(horizon):
        move, width, yaw_change = _plan(m)
        delta = np.r_[_clip_norm(move, MAX_STEP_M), _clip_norm(_rotation_toward(m, yaw_change), MAX_STEP_RAD), width]
        if t < pause:
            delta[:6] = 0.0
        if noise > 0:  # white noise plus a bias held over the chunk (a drifting, imperfect demonstrator)
            delta[:3] += bias[:3] + rng.normal(0.0, noise * MAX_STEP_M, 3)
            delta[3:6] += bias[3:] + rng.normal(0.0, noise * MAX_STEP_RAD, 3)
            delta[6] += rng.normal(0.0, noise * MAX_STEP_M)
        delta[:3] = _clip_norm(delta[:3], MAX_STEP_M)
        delta[3:6] = _clip_norm(delta[3:6], MAX_STEP_RAD)
        delta[6] = float(np.clip(delta[6], 0.0, OPEN_WIDTH))
        actions[t] = delta
        _advance(m, delta)
    return actions
