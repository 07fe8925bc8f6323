"""Thin rclpy nodes, one console script each. This registry is read by setup.py, bringup and the launch-file test."""

NODE_EXECUTABLES: dict[str, str] = {
    "mujoco_bridge": "robot_rl.nodes.mujoco_bridge",
    "policy": "robot_rl.nodes.policy",
    "episode_manager": "robot_rl.nodes.episode_manager",
    "reward": "robot_rl.nodes.reward",
    "learner": "robot_rl.nodes.learner",
    "camera": "robot_rl.nodes.camera",
    "teleop": "robot_rl.nodes.teleop",
    "recorder": "robot_rl.nodes.recorder",
    "arm": "robot_rl.nodes.arm",
}
