"""MuJoCo simulation of a Franka Panda with manipulation tasks, scripted experts and gymnasium envs.

No ROS imports here: the ROS bridge node (robot_rl.nodes.mujoco_bridge) and the gym envs both wrap `PandaSim`.
"""
from robot_rl.sim.expert import expert_chunk
from robot_rl.sim.panda_sim import PandaSim
from robot_rl.sim.robot import ARM_JOINTS, EE_NAMES, GRIPPER, Q_HOME
from robot_rl.sim.tasks import TASKS

__all__ = ["ARM_JOINTS", "EE_NAMES", "GRIPPER", "Q_HOME", "TASKS", "PandaSim", "expert_chunk"]
