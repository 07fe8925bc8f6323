"""The robot state vector shared by dataset collection and the policy nodes (numpy only, no ROS)."""
from __future__ import annotations

import numpy as np

from robot_rl.core.types import ARM_JOINTS

STATE_NAMES: tuple[str, ...] = (
    "ee_x", "ee_y", "ee_z", "ee_qw", "ee_qx", "ee_qy", "ee_qz", "gripper_width",
) + ARM_JOINTS
STATE_SIZE = len(STATE_NAMES)


def state_vector(ee_pos, ee_quat, gripper_width: float, joint_positions) -> np.ndarray:
    """float32 (15,): EE position (m, base frame), EE quaternion (wxyz), gripper width (m), 7 arm joints (rad)."""
    pos = np.asarray(ee_pos, dtype=np.float64).reshape(3)
    quat = np.asarray(ee_quat, dtype=np.float64).reshape(4)
    joints = np.asarray(joint_positions, dtype=np.float64).reshape(-1)[:7]
    if joints.size != 7:
        raise ValueError(f"expected 7 arm joint positions, got {joints.size}")
    return np.concatenate([pos, quat, [float(gripper_width)], joints]).astype(np.float32)
