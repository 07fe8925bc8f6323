"""Quaternion helpers (w, x, y, z order, as MuJoCo and geometry_msgs-to-wxyz use) for EE-delta integration."""
from __future__ import annotations

import numpy as np


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ])


def axis_angle_to_quat(rotvec: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    axis = np.asarray(rotvec) / angle
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def integrate_ee_delta(position, quat_wxyz, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply an EE delta (dx, dy, dz, rx, ry, rz[, ...]) in the base frame to a TCP pose."""
    new_position = np.asarray(position, dtype=float) + delta[0:3]
    new_quat = quat_multiply(axis_angle_to_quat(delta[3:6]), np.asarray(quat_wxyz, dtype=float))
    return new_position, new_quat / np.linalg.norm(new_quat)
