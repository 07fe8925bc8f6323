"""USB webcams (and video files) through OpenCV's `cv2.VideoCapture`, with the RealSense backend's interface.

`device` is a V4L2 index ("0"), a device path ("/dev/video2") or a video file; a file plays at `fps` (for replays
and tests). A webcam has no USB reset from OpenCV: `hardware_reset` releases the capture so it is reopened.
Timestamps are host arrival times (V4L2 buffer stamps are not exposed by OpenCV consistently).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

import cv2
import numpy as np

from robot_rl.hardware.camera import CameraError, CameraFrame, Intrinsics


class WebcamCamera:
    def __init__(self, device: str, width: int, height: int, fps: int, hfov_deg: float = 70.0,
                 exposure: float | None = None, gain: float | None = None, white_balance: float | None = None):
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self.exposure, self.gain, self.white_balance = exposure, gain, white_balance
        self.intrinsics = Intrinsics.ideal(width, height, hfov_deg)
        self.cap: cv2.VideoCapture | None = None
        self._is_file = False
        self._next_due = 0.0
        self._count = 0

    @property
    def name(self) -> str:
        return f"webcam {self.device}"

    def _source(self) -> int | str:
        return int(self.device) if self.device.isdigit() else self.device

    def present(self) -> bool:
        source = self._source()
        return os.path.exists(f"/dev/video{source}" if isinstance(source, int) else source)

    def open(self) -> None:
        cap = cv2.VideoCapture(self._source())
        if not cap.isOpened():
            raise CameraError(f"{self.name}: OpenCV could not open it")
        self._is_file = isinstance(self._source(), str) and os.path.isfile(self.device)
        if not self._is_file:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            if self.exposure is not None:
                cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)   # V4L2: 1 = manual exposure
                cap.set(cv2.CAP_PROP_EXPOSURE, self.exposure)
            if self.gain is not None:
                cap.set(cv2.CAP_PROP_GAIN, self.gain)
            if self.white_balance is not None:
                cap.set(cv2.CAP_PROP_AUTO_WB, 0)
                cap.set(cv2.CAP_PROP_WB_TEMPERATURE, self.white_balance)
        self.cap = cap
        self._next_due = time.monotonic()

    def read(self, timeout_s: float, arrival: Callable[[], float]) -> CameraFrame | None:
        """The next frame resized to width x height, or None (end of file, unplugged, timeout)."""
        if self.cap is None:
            return None
        if self._is_file:   # play at fps; wait no longer than the timeout for the frame's slot
            wait = self._next_due - time.monotonic()
            if wait > timeout_s:
                time.sleep(timeout_s)
                return None
            time.sleep(max(0.0, wait))
            self._next_due = max(self._next_due + 1.0 / self.fps, time.monotonic() - 1.0 / self.fps)
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            if self._is_file:
                time.sleep(timeout_s)   # a file that ended behaves like a camera that stopped sending
            return None
        if bgr.shape[:2] != (self.height, self.width):
            bgr = cv2.resize(bgr, (self.width, self.height), interpolation=cv2.INTER_AREA)
        self._count += 1
        return CameraFrame(np.ascontiguousarray(bgr[..., ::-1]), arrival(), None, self._count)

    def hardware_reset(self) -> None:
        self.close()

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
