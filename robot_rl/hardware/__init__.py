"""Device layers for real hardware. No ROS imports here: the nodes in robot_rl/nodes wrap these classes."""
