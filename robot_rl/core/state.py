"""The policy's state vector, built here and nowhere else: by the gym env, dataset collection, the recorder, the
learner and the policy backend alike (numpy only)."""
from __future__ import annotations

import numpy as np

from robot_rl.core.types import ARM_JOINTS

STATE_NAMES: tuple[str, ...] = (
    "ee_x", "ee_y", "ee_z", "ee_qw", "ee_qx", "ee_qy", "ee_qz", "gripper_width",
) + ARM_JOINTS
STATE_SIZE = len(STATE_NAMES)

# Privileged sim state (LeRobot's `observation.environment_state`): the task's first object and its goal, from the
# bridge's `sim/task_state` records. State-only sim policies need it (the cube is not in the robot state); policies
# for hardware use cameras instead.
ENVIRONMENT_STATE_NAMES: tuple[str, ...] = (
    "object_x", "object_y", "object_z", "object_qw", "object_qx", "object_qy", "object_qz", "goal_x", "goal_y", "goal_z",
)


def state_vector(ee_pos, ee_quat, gripper_width: float, joint_positions) -> np.ndarray:
    """float32 (15,): EE position (m, base frame), EE quaternion (wxyz), gripper width (m), 7 arm joints (rad)."""
    pos = np.asarray(ee_pos, dtype=np.float64).reshape(3)
    quat = np.asarray(ee_quat, dtype=np.float64).reshape(4)
    joints = np.asarray(joint_positions, dtype=np.float64).reshape(-1)[:7]
    if joints.size != 7:
        raise ValueError(f"expected 7 arm joint positions, got {joints.size}")
    return np.concatenate([pos, quat, [float(gripper_width)], joints]).astype(np.float32)


def observation_state(ee_pos, ee_quat, joint_states, task_state: dict | None = None) -> np.ndarray:
    """The state vector from what a driver publishes: EE pose, `joint_states` (7 arm joints + gripper width), and
    for state-only sim policies the task state (the object pose and goal appended, ENVIRONMENT_STATE_NAMES)."""
    joints = np.asarray(joint_states, dtype=np.float64).reshape(-1)
    if joints.size != 8:
        raise ValueError(f"expected 7 arm joints + the gripper width, got {joints.size} values")
    state = state_vector(ee_pos, ee_quat, joints[7], joints[:7])
    return state if task_state is None else np.r_[state, environment_vector(task_state)]


def environment_vector(task_state: dict) -> np.ndarray:
    """float32 (10,): first object's position and quaternion (identity when the task has none) and the goal."""
    objects = list(task_state.get("objects", {}).values())
    pos, quat = (objects[0]["pos"], objects[0]["quat"]) if objects else ([0.0] * 3, [1.0, 0.0, 0.0, 0.0])
    return np.concatenate([pos, quat, task_state["goal"]]).astype(np.float32)


def has_environment_state(state_names) -> bool:
    """True when a state layout ends with the environment state (datasets collected with it)."""
    n = len(ENVIRONMENT_STATE_NAMES)
    return tuple(state_names[-n:]) == ENVIRONMENT_STATE_NAMES


# The observation streams a policy reads, named once for the policy node, its backends and the learner: the names of
# the topics they arrive on (robot_rl.ros.contract), written out here below the ROS layer.
JOINT_STATES_STREAM = "joint_states"
EE_POSE_STREAM = "ee_pose"
TASK_STATE_STREAM = "sim/task_state"


def camera_stream(cam: str) -> str:
    return f"cameras/{cam}/image_raw"


def observation_streams(environment_state: bool, cameras=()) -> tuple[str, ...]:
    """The streams one observation is built from: `joint_states` and `ee_pose` (the state vector), the sim task state
    for policies with `environment_state`, one image stream per camera."""
    return ((JOINT_STATES_STREAM, EE_POSE_STREAM) + ((TASK_STATE_STREAM,) if environment_state else ())
            + tuple(camera_stream(cam) for cam in cameras))


def state_from_streams(samples: dict) -> np.ndarray:
    """observation_state from samples keyed by stream name: `ee_pose` as (position, quat wxyz), `joint_states` as
    its 8 positions, and the task state dict when the samples hold one."""
    position, quat = samples[EE_POSE_STREAM]
    return observation_state(position, quat, samples[JOINT_STATES_STREAM], samples.get(TASK_STATE_STREAM))
