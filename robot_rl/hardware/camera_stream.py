"""One camera read in its own thread with the recovery the camera node relies on (no ROS).

Frames are read with a short timeout. After `max_misses` consecutive misses the stream closes the device, calls
`hardware_reset()`, waits for it to reappear and opens it again; a driver exception does the same instead of ending
the thread. A frame is handed on once, only if it is newer than the last one and younger than `stale_after_s`.
The stream's health (state and counters) is what the node publishes as its status record.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from robot_rl.configs.camera import CameraConfig
from robot_rl.hardware.camera import CameraError, CameraFrame, Intrinsics
from robot_rl.hardware.realsense import RealSenseCamera, RealSenseOptions
from robot_rl.hardware.webcam import WebcamCamera


def open_camera(cfg: CameraConfig):
    """The device layer of the configured backend (opened by the stream)."""
    if cfg.backend == "opencv":
        return WebcamCamera(cfg.device, cfg.width, cfg.height, cfg.fps, cfg.hfov_deg, cfg.exposure, cfg.gain,
                            cfg.white_balance)
    return RealSenseCamera(cfg.serial, cfg.width, cfg.height, cfg.fps, cfg.depth,
                           RealSenseOptions(cfg.exposure, cfg.gain, cfg.white_balance))


@dataclass
class StreamHealth:
    state: str = "starting"  # starting | streaming | stale | resetting
    message: str = ""
    frames: int = 0          # frames handed on
    misses: int = 0          # read timeouts in total
    resets: int = 0          # hardware resets done
    dropped_stale: int = 0   # frames read but not handed on (not newer / too old)


class CameraStream:
    """`on_open(intrinsics)` after every (re)open, `on_frame(frame)` per fresh frame, `on_change()` when the state
    changes; all three run in the reader thread. `log` is any logger with info / warning / error."""

    def __init__(self, device, cfg: CameraConfig, log, on_open: Callable[[Intrinsics], None],
                 on_frame: Callable[[CameraFrame], None], on_change: Callable[[], None]):
        self.device, self.cfg, self.log = device, cfg, log
        self.on_open, self.on_frame, self.on_change = on_open, on_frame, on_change
        self.lock = threading.Lock()
        self.health = StreamHealth()
        self.last_stamp = -np.inf
        self.last_frame_wall = 0.0
        self.running = True
        self.reader = threading.Thread(target=self._read_loop, name=f"camera-{cfg.name}", daemon=True)

    def start(self) -> None:
        self.reader.start()

    def snapshot(self) -> StreamHealth:
        with self.lock:
            return replace(self.health)

    def set_state(self, state: str, message: str = "") -> None:
        with self.lock:
            changed = (state, message) != (self.health.state, self.health.message)
            self.health.state, self.health.message = state, message
        if not changed:
            return
        text = f"{self.cfg.name}: {state}{': ' + message if message else ''}"
        if state == "streaming":
            self.log.info(text)
        else:
            self.log.warning(text)
        self.on_change()

    def check_stale(self) -> None:
        """Streaming without a frame for `stale_after_s` (wall clock): stale."""
        idle = time.monotonic() - self.last_frame_wall
        if self.health.state == "streaming" and idle > self.cfg.stale_after_s:
            self.set_state("stale", f"no frame for {idle:.2f} s")

    def _count(self, counter: str) -> None:
        with self.lock:
            setattr(self.health, counter, getattr(self.health, counter) + 1)

    # ---- the reader thread: open, read, reset on repeated misses -------------------------------------------
    def _read_loop(self) -> None:
        while self.running:
            try:
                self._stream_until_lost()
            except Exception as err:  # a driver fault must not end the thread: reset and go on
                self.log.error(f"{self.cfg.name}: {type(err).__name__}: {err}")
                self._reset_device(f"{type(err).__name__}: {err}")

    def _stream_until_lost(self) -> None:
        cfg = self.cfg
        if not self._open_device():
            return
        misses = 0
        while self.running and misses < cfg.max_misses:
            frame = self.device.read(cfg.read_timeout_s, time.time)
            if frame is None:
                misses += 1
                self._count("misses")
                continue
            misses = 0
            self._hand_on(frame)
        if self.running:
            self._reset_device(f"{misses} reads timed out ({cfg.read_timeout_s} s each)")

    def _open_device(self) -> bool:
        try:
            self.device.open()
        except (CameraError, RuntimeError) as err:
            self.set_state("resetting", f"cannot open {self.device.name}: {err}")
            self._wait_for_device()
            return False
        intr = self.device.intrinsics
        self.on_open(intr)
        self.log.info(f"{self.cfg.name}: {self.device.name} open, {intr.width}x{intr.height} "
                      f"@ {self.cfg.fps} Hz, fx={intr.fx:.1f} fy={intr.fy:.1f}")
        return True

    def _reset_device(self, why: str) -> None:
        """stop -> hardware_reset() -> wait for the device to reappear (the caller then restarts it)."""
        self.set_state("resetting", why)
        self.device.close()
        try:
            self.device.hardware_reset()
        except (CameraError, RuntimeError) as err:
            self.log.warning(f"{self.cfg.name}: hardware reset failed ({err}); reopening anyway")
        self._count("resets")
        self._wait_for_device()

    def _wait_for_device(self) -> None:
        deadline = time.monotonic() + self.cfg.reappear_timeout_s
        time.sleep(min(0.5, self.cfg.read_timeout_s))  # let a resetting device drop off the bus first
        while self.running and not self.device.present():
            if time.monotonic() > deadline:
                self.set_state("resetting", f"{self.device.name} has not reappeared after "
                                            f"{self.cfg.reappear_timeout_s} s; still waiting")
                deadline = time.monotonic() + self.cfg.reappear_timeout_s
            time.sleep(0.1)

    def _hand_on(self, frame: CameraFrame) -> None:
        """on_frame once per frame; repeats and frames older than stale_after_s are dropped."""
        age = time.time() - frame.host_stamp
        if frame.host_stamp <= self.last_stamp or age > self.cfg.stale_after_s:
            self._count("dropped_stale")
            return
        self.last_stamp = frame.host_stamp
        self.on_frame(frame)
        self.last_frame_wall = time.monotonic()
        self._count("frames")
        if self.health.state != "streaming":
            self.set_state("streaming")

    def close(self) -> None:
        self.running = False
        self.reader.join(timeout=2 * self.cfg.read_timeout_s + 1.0)
        self.device.close()
