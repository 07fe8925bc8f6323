"""Typed parameters of every node, one pydantic model per node, importable without rclpy, torch or device libraries:
the bringup and the launch files validate a whole graph with them before any process starts."""
