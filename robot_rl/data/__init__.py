"""Datasets: LeRobot v3 writer/reader, the shared state vector, scripted sim demonstrations (no ROS imports)."""
from robot_rl.core.state import STATE_NAMES, STATE_SIZE, state_vector
from robot_rl.data.lerobot import ActionChunks, DatasetError, LeRobotReader, LeRobotWriter, chunk_dataset

__all__ = ["STATE_NAMES", "STATE_SIZE", "ActionChunks", "DatasetError", "LeRobotReader", "LeRobotWriter",
           "chunk_dataset", "state_vector"]
