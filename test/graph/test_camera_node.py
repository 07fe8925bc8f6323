"""Camera node: RealSense through pyrealsense2's own rs.software_device (colour + aligned depth, fixed exposure,
intrinsics, global-time stamps, reset after misses, no stale frames) and the OpenCV backend on a video file."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyrealsense2 as rs  # noqa: E402,I001

from robot_rl.bringup import ros_environment
from robot_rl.hardware.realsense import RealSenseCamera, RealSenseOptions
from robot_rl.nodes.camera import CameraNode
from robot_rl.ros import contract, convert, records
from robot_rl.ros.probe import Probe, wait_for
from node_harness import NodeInThread

W, H, FPS, SERIAL = 64, 48, 30, "SW0001"


class SoftwareRealSense:
    """A RealSense made of pyrealsense2's software device: colour (rgb8) and depth (z16) sensors with intrinsics,
    an exposure option, and a thread pushing frames stamped in the global-time domain. `paused` stops the frames
    (a camera that stalls); `unplugged` hides the serial from the lookup (USB re-enumeration after a reset)."""

    def __init__(self):
        self.dev = rs.software_device()
        self.dev.register_info(rs.camera_info.serial_number, SERIAL)
        self.dev.register_info(rs.camera_info.name, "software D435")
        self.color = self.dev.add_sensor("RGB Camera")
        self.depth = self.dev.add_sensor("Stereo Module")
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, 61.5, 60.5, 31.0, 23.5
        intr.model, intr.coeffs = rs.distortion.brown_conrady, [0.1, -0.05, 0.0, 0.0, 0.01]
        self.color_profile = self._stream(self.color, rs.stream.color, rs.format.rgb8, 3, 0, intr)
        self.depth_profile = self._stream(self.depth, rs.stream.depth, rs.format.z16, 2, 1, intr)
        identity = rs.extrinsics()
        identity.rotation, identity.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self.depth_profile.register_extrinsics_to(self.color_profile, identity)
        self.depth.add_read_only_option(rs.option.depth_units, 0.001)
        self.color.add_option(rs.option.enable_auto_exposure, rs.option_range(0, 1, 1, 1), True)
        self.color.add_option(rs.option.exposure, rs.option_range(1, 10000, 166, 1), True)  # min, max, default, step
        self.dev.create_matcher(rs.matchers.default)
        self.paused = threading.Event()
        self.unplugged = threading.Event()
        self.pushed: list[tuple[int, float]] = []   # (frame number, global-time stamp ms)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._produce, daemon=True)
        self.thread.start()

    @staticmethod
    def _stream(sensor, kind, fmt, bpp, uid, intr):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = kind, 0, uid, W, H, FPS, bpp, fmt
        vs.intrinsics = intr
        return sensor.add_video_stream(vs)

    def lookup(self, serial: str):
        return self.dev if serial == SERIAL and not self.unplugged.is_set() else None

    def _frame(self, profile, pixels, bpp, number, stamp_ms):
        f = rs.software_video_frame()
        f.pixels, f.bpp, f.stride, f.timestamp = pixels, bpp, W * bpp, stamp_ms
        f.domain, f.frame_number, f.profile = rs.timestamp_domain.global_time, number, profile.as_video_stream_profile()
        return f

    def _produce(self):
        number = 0
        while not self.stop.is_set():
            time.sleep(1.0 / FPS)
            if self.paused.is_set():
                continue
            number += 1
            stamp = time.time() * 1000.0 - 5.0   # captured 5 ms before "now"
            rgb = np.full((H, W, 3), number % 256, np.uint8)
            depth = np.full((H, W), 500 + number, np.uint16)
            self.color.on_video_frame(self._frame(self.color_profile, rgb, 3, number, stamp))
            depth_frame = self._frame(self.depth_profile, depth, 2, number, stamp)
            depth_frame.depth_units = 0.001
            self.depth.on_video_frame(depth_frame)
            self.pushed.append((number, stamp))


@pytest.fixture
def software_camera():
    cam = SoftwareRealSense()
    yield cam
    cam.stop.set()
    cam.thread.join()


class Listener:
    def __init__(self, probe: Probe, cam: str):
        self.images, self.depths, self.infos, self.status = [], [], [], []
        for topic, sink in ((contract.camera_image(cam), self.images), (contract.camera_depth(cam), self.depths),
                            (contract.camera_info(cam), self.infos), (contract.camera_status(cam), self.status)):
            probe.node.create_subscription(topic.msg_type, topic.name, lambda m, s=sink: s.append((time.time(), m)),
                                           topic.qos)

    def states(self) -> list[str]:
        return [records.decode(m.data, records.CameraStatus).state for _, m in self.status]


def test_realsense_software_device(software_camera):
    cam = software_camera
    probe = Probe("camera_probe")
    listen = Listener(probe, "wrist")
    params = {"name": "wrist", "serial": SERIAL, "width": W, "height": H, "fps": FPS, "depth": True,
              "exposure": 250.0, "read_timeout_s": 0.1, "max_misses": 5, "stale_after_s": 0.3, "status_hz": 10.0}
    node = NodeInThread(CameraNode, params, lambda cfg: RealSenseCamera(cfg.serial, cfg.width, cfg.height, cfg.fps, cfg.depth,
                                                            RealSenseOptions(cfg.exposure), lookup=cam.lookup))
    try:
        wait_for(lambda: len(listen.images) >= 10 and len(listen.depths) >= 10, 15, "colour and depth frames")
        # fixed exposure reached the device, auto exposure is off
        assert cam.color.get_option(rs.option.exposure) == 250.0
        assert cam.color.get_option(rs.option.enable_auto_exposure) == 0.0
        info = listen.infos[-1][1]
        assert (info.width, info.height) == (W, H) and info.distortion_model == "plumb_bob"
        np.testing.assert_allclose(info.k, [61.5, 0, 31.0, 0, 60.5, 23.5, 0, 0, 1])
        np.testing.assert_allclose(info.d, [0.1, -0.05, 0.0, 0.0, 0.01], atol=1e-6)
        # image content, depth in mm, and the device's global-time stamp on both
        pushed = dict(cam.pushed)
        _, img = listen.images[-1]
        rgb = convert.msg_to_image(img)
        number = int(rgb[0, 0, 0])
        stamp = convert.from_time(img.header.stamp)
        match = [n for n, s in pushed.items() if n % 256 == number and abs(s / 1000 - stamp) < 1e-3]
        assert match, "published stamp is not the device capture time of that frame"
        depth = next(m for _, m in listen.depths if m.header.stamp == img.header.stamp)
        assert depth.encoding == "16UC1" and depth.header.frame_id == img.header.frame_id == "wrist_optical_frame"
        assert np.frombuffer(depth.data, np.uint16)[0] == 500 + match[0]

        # the camera stalls and vanishes from the bus: stale, reset, wait for the serial, restart
        cam.paused.set()
        cam.unplugged.set()
        paused_at = time.time()
        wait_for(lambda: "resetting" in listen.states(), 10, "a reset after repeated misses")
        time.sleep(0.5)
        assert node.node.stream.snapshot().state == "resetting" and "stale" in listen.states()
        cam.unplugged.clear()
        cam.paused.clear()
        resumed_at = time.time()
        wait_for(lambda: any(t > resumed_at for t, _ in listen.images), 15, "frames after the restart")
        wait_for(lambda: listen.states()[-1] == "streaming", 5, "streaming again")
        status = records.decode(listen.status[-1][1].data, records.CameraStatus)
        assert status.resets >= 1 and status.misses >= 5
        gap = [t for t, _ in listen.images if paused_at + 0.2 < t < resumed_at]
        assert not gap, "frames were published while the camera was down"
        stamps = [convert.from_time(m.header.stamp) for _, m in listen.images]
        assert all(b > a for a, b in zip(stamps, stamps[1:])), "a frame was published twice or out of order"
    finally:
        node.close()
        probe.close()


def test_opencv_backend_node_process(tmp_path: Path):
    """The node as its own process, OpenCV backend reading a video file; at the file's end it misses, resets
    (reopens) and streams again."""
    video = tmp_path / "cam.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 20, (80, 60))
    for i in range(20):
        writer.write(np.full((60, 80, 3), (10 * i) % 256, np.uint8))
    writer.release()
    probe = Probe("webcam_probe")
    listen = Listener(probe, "usb")
    cmd = [sys.executable, "-m", "robot_rl.nodes.camera", "--ros-args", "-p", "name:=usb", "-p", "backend:=opencv",
           "-p", f"device:={video}", "-p", "width:=40", "-p", "height:=30", "-p", "fps:=20",
           "-p", "read_timeout_s:=0.1", "-p", "max_misses:=3"]
    proc = subprocess.Popen(cmd, env=ros_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(listen.images) >= 25 and "resetting" in listen.states(), 30,
                 "frames from the first pass, a reset at the end of the file, and frames from the second pass")
        first = convert.msg_to_image(listen.images[0][1])
        assert first.shape == (30, 40, 3)
        info = listen.infos[-1][1]
        assert (info.width, info.height) == (40, 30) and info.k[0] == pytest.approx(20 / np.tan(np.deg2rad(35)))
        assert records.decode(listen.status[-1][1].data, records.CameraStatus).resets >= 1
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        probe.close()
    assert proc.returncode == 0, out


def test_realsense_requires_serial():
    proc = subprocess.run([sys.executable, "-m", "robot_rl.nodes.camera", "--ros-args", "-p", "name:=x"],
                          env=ros_environment(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "serial" in proc.stderr
