"""What a recorded dataset must hold, checked file by file: shared by the recorder's graph and fault tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from robot_rl.core.state import STATE_NAMES
from robot_rl.core.types import CONTROL_HZ, EE_SPACE_NAMES
from robot_rl.data import lerobot
from robot_rl.data.lerobot import LeRobotReader

FPS = CONTROL_HZ
STEPS = 20
SMALL = ["mujoco_bridge.camera_width=48", "mujoco_bridge.camera_height=48", "mujoco_bridge.camera_names=[front]",
         "recorder.cameras=[front]", "recorder.image_width=48", "recorder.image_height=48",
         f"episode_manager.max_steps={STEPS}"]


def check_dataset(root: Path) -> LeRobotReader:
    """Everything the trainers rely on, checked file by file (the reader validates the same on open)."""
    reader = LeRobotReader(root)
    assert reader.fps == FPS and reader.cameras == ["front"]
    assert reader.state_names == list(STATE_NAMES) and reader.action_names == list(EE_SPACE_NAMES)
    penalties = 0
    for i, meta in enumerate(reader.episodes):
        rows = pq.ParquetFile(reader.data_path(i)).metadata.num_rows
        assert rows == meta["length"] == lerobot._video_frame_count(reader.video_path(i, "front"))
        ep = reader.episode(i, images=True)
        n = meta["length"]
        assert n >= 3 and ep["state"].shape == (n, len(STATE_NAMES)) and ep["action"].shape == (n, 7)
        assert ep["images.front"].shape == (n, 48, 48, 3) and ep["images.front"].std() > 1.0
        # timestamp is the nominal grid LeRobot looks video frames up on; the measured robot-clock stamps sit on
        # the 15 Hz grid too, strictly increasing, from 0
        np.testing.assert_array_equal(ep["timestamp"], (np.arange(n) / FPS).astype(np.float32))
        slots = ep["measured_timestamp"] * FPS
        assert abs(slots[0]) < 1e-3 and np.all(np.diff(slots) > 0.5) and np.abs(slots - np.round(slots)).max() < 0.1
        assert ep["done"][-1] and not ep["done"][:-1].any()
        # the scripted expert moves the arm: EE deltas within the safety limit, and the state follows them
        assert np.abs(ep["action"][:, :3]).max() <= 0.0101 and np.abs(ep["action"][:, :3]).sum() > 0.002 * n
        moved = np.linalg.norm(ep["state"][-1, :3] - ep["state"][0, :3])
        assert moved > 0.001 * n
        # next.reward: the sim reward node's records (step penalty, 1 on success), matched one period later
        assert np.all((ep["reward"] >= -0.0101) & (ep["reward"] <= 1.0))
        penalties += int((ep["reward"] < 0).sum())
    assert penalties > 0, "no reward record was matched to a frame"
    return reader
