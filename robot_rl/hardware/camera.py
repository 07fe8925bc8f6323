"""What every camera backend shares (no ROS, no device library): the error type, pinhole intrinsics and one
captured frame. The RealSense and webcam backends produce them, the MuJoCo bridge describes its rendered cameras
with `Intrinsics`, and robot_rl/ros/convert.py turns them into messages."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class CameraError(RuntimeError):
    """The camera cannot be opened or configured as asked; the message says which camera and why."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the colour stream (pixels) with distortion model and coefficients."""

    width: int
    height: int
    fx: float
    fy: float
    ppx: float
    ppy: float
    model: str = "plumb_bob"       # ROS distortion_model name
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def ideal(cls, width: int, height: int, fov_deg: float, vertical: bool = False) -> Intrinsics:
        """A distortion-free camera with square pixels, centred, with the given horizontal field of view (webcams
        without calibration) or vertical one (MuJoCo's fovy)."""
        f = 0.5 * (height if vertical else width) / np.tan(np.deg2rad(fov_deg) / 2)
        return cls(width, height, f, f, width / 2, height / 2)


@dataclass
class CameraFrame:
    """One capture: RGB image, optional depth in mm aligned to it, and the capture time on the host clock."""

    rgb: np.ndarray                  # (H, W, 3) uint8
    host_stamp: float                # seconds, host wall clock (time.time() epoch)
    depth_mm: np.ndarray | None = None   # (H, W) uint16
    frame_number: int = -1
