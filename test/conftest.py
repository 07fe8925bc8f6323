"""Test session environment: loopback-only DDS on a random domain, offline hubs, EGL rendering.

Set before anything imports rclpy, mujoco or huggingface_hub. Under pytest-xdist (`make test` runs two workers) each
worker gets its own domain, two apart, because the fault tests use the domain after the session's as "another
domain" that must be empty.
"""
import os
import random
import tempfile
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))
if os.environ.get("PYTEST_XDIST_WORKER"):  # gw0, gw1, ...
    worker = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw"))
    os.environ["ROS_DOMAIN_ID"] = str((int(os.environ["ROS_DOMAIN_ID"]) - 1 + 2 * worker) % 100 + 1)
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="robot_rl_ros_log_"))
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(Path(__file__).resolve().parent.parent / "config" / "fastdds.xml"))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
