"""Camera node: one camera per process (RealSense by serial, or an OpenCV webcam), on the topic contract.

Publishes `cameras/<name>/image_raw` (rgb8), optionally `cameras/<name>/depth/image_raw` (16UC1 mm, aligned to
colour, same frame and intrinsics), `cameras/<name>/camera_info` (latched, from the device intrinsics) and
`cameras/<name>/status` (latched CameraStatus record). Run several instances with different `name` / `serial` for
several cameras (a USB reset of one camera then never stalls another).

Frames are read in a dedicated thread with a short timeout. After `max_misses` consecutive misses the supervisor
stops the streams, calls `hardware_reset()`, waits for the serial to reappear and restarts; while it is down the
status says `stale` / `resetting` and nothing is published: a frame is published once, only if it is newer than the
last one and younger than `stale_after_s`. Stamps are the device capture times mapped to ROS time.
"""
from __future__ import annotations

import threading
import time
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from robot_rl.hardware.realsense import CameraError, CameraFrame, Intrinsics, RealSenseCamera, RealSenseOptions
from robot_rl.hardware.webcam import WebcamCamera
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, run_node


class CameraConfig(BaseModel, extra="forbid"):
    name: str = Field("front", pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="topics: cameras/<name>/...")
    backend: str = Field("realsense", pattern="^(realsense|opencv)$")
    serial: str = Field("", description="realsense: serial number (required)")
    device: str = Field("0", description="opencv: V4L2 index, /dev/videoN or a video file")
    width: int = Field(640, ge=16, le=4096)
    height: int = Field(480, ge=16, le=4096)
    fps: int = Field(30, ge=1, le=300)
    depth: bool = Field(False, description="realsense: also publish depth aligned to colour")
    exposure: float | None = Field(None, gt=0, description="fixed exposure (RealSense: us; OpenCV: backend units)")
    gain: float | None = Field(None, ge=0)
    white_balance: float | None = Field(None, gt=0, description="fixed white balance (K)")
    hfov_deg: float = Field(70.0, gt=0, lt=180, description="opencv: nominal horizontal field of view")
    frame_id: str = Field("", description="default <name>_optical_frame")
    read_timeout_s: float = Field(0.2, gt=0, le=5)
    max_misses: int = Field(10, ge=1, description="consecutive read timeouts before a hardware reset")
    reappear_timeout_s: float = Field(15.0, gt=0, description="wait this long for the serial after a reset")
    stale_after_s: float = Field(0.5, gt=0, description="no frame for this long: the stream is stale")
    status_hz: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _serial_for_realsense(self):
        if self.backend == "realsense" and not self.serial:
            raise ValueError("backend 'realsense' needs 'serial' (list them: python -m robot_rl.hardware.realsense)")
        if self.backend == "opencv" and self.depth:
            raise ValueError("'depth' needs backend 'realsense'")
        return self


CONFIG = CameraConfig


class CameraStatus(records.Record):
    """The stream's health, latched on `cameras/<name>/status`."""

    kind: Literal["camera_status"] = "camera_status"
    camera: str
    state: Literal["starting", "streaming", "stale", "resetting"]
    message: str = ""
    frames: int = 0          # frames published
    misses: int = 0          # read timeouts in total
    resets: int = 0          # hardware resets done
    dropped_stale: int = 0   # frames read but not published (not newer / too old)
    fps: float = 0.0         # measured over the last status period


def make_device(cfg: CameraConfig):
    if cfg.backend == "opencv":
        return WebcamCamera(cfg.device, cfg.width, cfg.height, cfg.fps, cfg.hfov_deg, cfg.exposure, cfg.gain,
                            cfg.white_balance)
    return RealSenseCamera(cfg.serial, cfg.width, cfg.height, cfg.fps, cfg.depth,
                           RealSenseOptions(cfg.exposure, cfg.gain, cfg.white_balance))


def camera_info_msg(intr: Intrinsics, stamp: float, frame_id: str) -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp = convert.to_time(stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = intr.width, intr.height
    msg.distortion_model = intr.model
    msg.d = [float(c) for c in intr.coeffs]
    msg.k = [intr.fx, 0.0, intr.ppx, 0.0, intr.fy, intr.ppy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intr.fx, 0.0, intr.ppx, 0.0, 0.0, intr.fy, intr.ppy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def depth_msg(depth_mm: np.ndarray, stamp: float, frame_id: str) -> Image:
    msg = Image()
    msg.header.stamp = convert.to_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(depth_mm.shape[0]), int(depth_mm.shape[1])
    msg.encoding = "16UC1"
    msg.is_bigendian = 0
    msg.step = msg.width * 2
    msg.data = np.ascontiguousarray(depth_mm, dtype="<u2").tobytes()
    return msg


class CameraNode(Node):
    def __init__(self, device_factory=make_device, **node_kwargs):
        super().__init__("camera", **node_kwargs)
        self.cfg = declare_config(self, CameraConfig)
        cfg = self.cfg
        self.frame_id = cfg.frame_id or f"{cfg.name}_optical_frame"
        self.device = device_factory(cfg)
        self.pub_image = self._pub(contract.camera_image(cfg.name))
        self.pub_depth = self._pub(contract.camera_depth(cfg.name)) if cfg.depth else None
        self.pub_info = self._pub(contract.camera_info(cfg.name))
        self.pub_status = self._pub(contract.camera_status(cfg.name))
        self.lock = threading.Lock()
        self.status = CameraStatus(stamp=self.ros_now(), camera=cfg.name, state="starting")
        self.last_stamp = -np.inf
        self.last_frame_wall = 0.0
        self.frames_at_status = (0, time.monotonic())
        self.running = True
        self.publish_status()
        self.create_timer(1.0 / cfg.status_hz, self.on_status_timer)
        self.reader = threading.Thread(target=self.read_loop, name=f"camera-{cfg.name}", daemon=True)
        self.reader.start()

    def _pub(self, topic: contract.Topic):
        return self.create_publisher(topic.msg_type, topic.name, topic.qos)

    def ros_now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ---- status ---------------------------------------------------------------------------------------------
    def set_state(self, state: str, message: str = "") -> None:
        with self.lock:
            changed = (state, message) != (self.status.state, self.status.message)
            self.status.state, self.status.message = state, message
        if not changed:
            return
        text = f"{self.cfg.name}: {state}{': ' + message if message else ''}"
        if state == "streaming":
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text)
        self.publish_status()

    def publish_status(self) -> None:
        with self.lock:
            self.status.stamp = self.ros_now()
            text = records.encode(self.status)
        self.pub_status.publish(String(data=text))

    def on_status_timer(self) -> None:
        frames, since = self.frames_at_status
        now = time.monotonic()
        with self.lock:
            self.status.fps = round((self.status.frames - frames) / max(now - since, 1e-6), 2)
            self.frames_at_status = (self.status.frames, now)
        if self.status.state == "streaming" and now - self.last_frame_wall > self.cfg.stale_after_s:
            self.set_state("stale", f"no frame for {now - self.last_frame_wall:.2f} s")
        self.publish_status()

    # ---- the reader thread: open, read, reset on repeated misses -------------------------------------------
    def read_loop(self) -> None:
        while self.running:
            try:
                self.stream_until_lost()
            except Exception as err:  # a driver fault must not end the thread: reset and go on
                self.get_logger().error(f"{self.cfg.name}: {type(err).__name__}: {err}")
                self.reset_device(f"{type(err).__name__}: {err}")

    def stream_until_lost(self) -> None:
        cfg = self.cfg
        if not self.open_device():
            return
        misses = 0
        while self.running and misses < cfg.max_misses:
            frame = self.device.read(cfg.read_timeout_s, time.time)
            if frame is None:
                misses += 1
                with self.lock:
                    self.status.misses += 1
                continue
            misses = 0
            self.publish_frame(frame)
        if self.running:
            self.reset_device(f"{misses} reads timed out ({cfg.read_timeout_s} s each)")

    def open_device(self) -> bool:
        try:
            self.device.open()
        except (CameraError, RuntimeError) as err:
            self.set_state("resetting", f"cannot open {self.device.name}: {err}")
            self.wait_for_device()
            return False
        intr = self.device.intrinsics
        self.pub_info.publish(camera_info_msg(intr, self.ros_now(), self.frame_id))
        self.get_logger().info(f"{self.cfg.name}: {self.device.name} open, {intr.width}x{intr.height} "
                               f"@ {self.cfg.fps} Hz, fx={intr.fx:.1f} fy={intr.fy:.1f}")
        return True

    def reset_device(self, why: str) -> None:
        """stop -> hardware_reset() -> wait for the device to reappear (the caller then restarts it)."""
        self.set_state("resetting", why)
        self.device.close()
        try:
            self.device.hardware_reset()
        except (CameraError, RuntimeError) as err:
            self.get_logger().warning(f"{self.cfg.name}: hardware reset failed ({err}); reopening anyway")
        with self.lock:
            self.status.resets += 1
        self.wait_for_device()

    def wait_for_device(self) -> None:
        deadline = time.monotonic() + self.cfg.reappear_timeout_s
        time.sleep(min(0.5, self.cfg.read_timeout_s))  # let a resetting device drop off the bus first
        while self.running and not self.device.present():
            if time.monotonic() > deadline:
                self.set_state("resetting", f"{self.device.name} has not reappeared after "
                                            f"{self.cfg.reappear_timeout_s} s; still waiting")
                deadline = time.monotonic() + self.cfg.reappear_timeout_s
            time.sleep(0.1)

    def publish_frame(self, frame: CameraFrame) -> None:
        """Publish a frame once, stamped with its capture time on the ROS clock; drop repeats and old frames."""
        age = time.time() - frame.host_stamp
        if frame.host_stamp <= self.last_stamp or age > self.cfg.stale_after_s:
            with self.lock:
                self.status.dropped_stale += 1
            return
        self.last_stamp = frame.host_stamp
        stamp = frame.host_stamp + (self.ros_now() - time.time())   # host wall clock -> ROS clock
        self.pub_image.publish(convert.image_to_msg(frame.rgb, stamp, self.frame_id))
        if self.pub_depth is not None and frame.depth_mm is not None:
            self.pub_depth.publish(depth_msg(frame.depth_mm, stamp, self.frame_id))
        self.last_frame_wall = time.monotonic()
        with self.lock:
            self.status.frames += 1
        if self.status.state != "streaming":
            self.set_state("streaming")

    def close(self) -> None:
        self.running = False
        self.reader.join(timeout=2 * self.cfg.read_timeout_s + 1.0)
        self.device.close()


def main(args=None) -> None:
    raise SystemExit(run_node(CameraNode, args))


if __name__ == "__main__":
    main()
