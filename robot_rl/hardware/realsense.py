"""RealSense cameras through pyrealsense2's sensor API (no ROS).

A camera is found by serial number, its colour stream (and optionally depth, aligned to colour) is opened on the
sensors that offer it, and frames are collected by an `rs.syncer`. The sensor API is used instead of `rs.pipeline`
because it works the same for real devices and for pyrealsense2's own `rs.software_device` (which a pipeline cannot
find in a context), so the tests drive exactly this code.

Time: frames carry the device timestamp (ms) and its domain. With global time enabled (`global_time_enabled`, the
default here) librealsense maps the device clock onto the host clock; for the raw hardware clock `DeviceClock`
estimates the offset as the smallest observed (arrival - device) difference, i.e. the transfer latency bound.

pyrealsense2 is imported lazily, and must come after rclpy in a process that uses both: pyrealsense2 2.59 bundles
its own DDS libraries, and importing it first makes the process crash at exit.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.hardware.camera import CameraError, CameraFrame, Intrinsics

DEPTH_UNIT_M = 0.001  # published depth is 16-bit millimetres (sensor_msgs 16UC1 convention)


class DeviceClock:
    """Device timestamps -> host wall-clock seconds.

    Domains already on the host clock (global / system time) pass through. For the hardware clock the offset
    o = min_k (arrival_k - device_k) over the last `window` frames is used: the arrival is the capture plus a
    positive transfer latency, so the minimum is the tightest bound and follows slow drift.
    """

    def __init__(self, window: int = 300):
        self.offsets: deque[float] = deque(maxlen=window)

    def to_host(self, device_s: float, arrival_s: float, on_host_clock: bool) -> float:
        if on_host_clock:
            return device_s
        self.offsets.append(arrival_s - device_s)
        return device_s + min(self.offsets)


_DISTORTION = {"brown_conrady": "plumb_bob", "inverse_brown_conrady": "plumb_bob", "modified_brown_conrady": "plumb_bob",
               "none": "plumb_bob", "kannala_brandt4": "equidistant", "ftheta": "equidistant"}


def _intrinsics(rs_intr) -> Intrinsics:
    model = str(rs_intr.model).rsplit(".", 1)[-1]
    coeffs = tuple(float(c) for c in rs_intr.coeffs)
    if _DISTORTION.get(model) == "equidistant":
        coeffs = coeffs[:4]
    return Intrinsics(rs_intr.width, rs_intr.height, rs_intr.fx, rs_intr.fy, rs_intr.ppx, rs_intr.ppy,
                      _DISTORTION.get(model, "plumb_bob"), coeffs)


def context_lookup(serial: str):
    """The connected device with this serial number, or None (default device lookup)."""
    import pyrealsense2 as rs

    for device in rs.context().query_devices():
        if device.get_info(rs.camera_info.serial_number) == serial:
            return device
    return None


def list_devices() -> list[dict[str, str]]:
    """Name, serial and firmware of every connected RealSense."""
    import pyrealsense2 as rs

    info = rs.camera_info
    return [{"name": d.get_info(info.name), "serial": d.get_info(info.serial_number),
             "firmware": d.get_info(info.firmware_version) if d.supports(info.firmware_version) else ""}
            for d in rs.context().query_devices()]


@dataclass
class RealSenseOptions:
    """Fixed sensor options; None leaves the device's setting (and auto mode) alone."""

    exposure_us: float | None = None
    gain: float | None = None
    white_balance: float | None = None


class RealSenseCamera:
    """One RealSense by serial: open / read(timeout) / reset / close. `lookup(serial)` finds the device (the
    context by default; the tests hand it pyrealsense2's software device)."""

    def __init__(self, serial: str, width: int, height: int, fps: int, depth: bool = False,
                 options: RealSenseOptions | None = None,
                 lookup: Callable[[str], Any] = context_lookup):
        self.serial, self.width, self.height, self.fps, self.depth = serial, width, height, fps, depth
        self.options = options or RealSenseOptions()
        self.lookup = lookup
        self.clock = DeviceClock()
        self.device = None
        self._sensors: list = []
        self._syncer = None
        self._align = None
        self._depth_scale = DEPTH_UNIT_M
        self.intrinsics: Intrinsics | None = None

    @property
    def name(self) -> str:
        return f"realsense {self.serial}"

    def present(self) -> bool:
        return self.lookup(self.serial) is not None

    def open(self) -> None:
        import pyrealsense2 as rs

        device = self.lookup(self.serial)
        if device is None:
            raise CameraError(f"{self.name}: not connected")
        wanted = [(rs.stream.color, rs.format.rgb8)] + ([(rs.stream.depth, rs.format.z16)] if self.depth else [])
        chosen: dict[Any, list] = {}
        color_profile = None
        for stream, fmt in wanted:
            match = None
            for sensor in device.query_sensors():
                for p in sensor.get_stream_profiles():
                    if p.stream_type() == stream and p.format() == fmt and p.fps() == self.fps and p.is_video_stream_profile():
                        v = p.as_video_stream_profile()
                        if (v.width(), v.height()) == (self.width, self.height):
                            match = (sensor, p)
                            break
                if match:
                    break
            if match is None:
                raise CameraError(f"{self.name}: no {stream} {fmt} {self.width}x{self.height}@{self.fps} profile")
            chosen.setdefault(match[0], []).append(match[1])
            if stream == rs.stream.color:
                color_profile = match[1]
        self.intrinsics = _intrinsics(color_profile.as_video_stream_profile().get_intrinsics())
        self._apply_options(rs, list(chosen))
        self._syncer = rs.syncer(4)
        self._align = rs.align(rs.stream.color) if self.depth else None
        for sensor, profiles in chosen.items():
            if sensor.supports(rs.option.global_time_enabled) and not sensor.is_option_read_only(
                    rs.option.global_time_enabled):
                sensor.set_option(rs.option.global_time_enabled, 1)
            if sensor.supports(rs.option.depth_units):
                self._depth_scale = float(sensor.get_option(rs.option.depth_units))
            sensor.open(profiles)
            sensor.start(self._syncer)
            self._sensors.append(sensor)
        self.device = device

    def _apply_options(self, rs, sensors: list) -> None:
        """Fixed exposure / gain / white balance on the sensor that streams colour (auto modes switched off)."""
        settings = [(rs.option.enable_auto_exposure, rs.option.exposure, self.options.exposure_us),
                    (None, rs.option.gain, self.options.gain),
                    (rs.option.enable_auto_white_balance, rs.option.white_balance, self.options.white_balance)]
        color_sensor = sensors[0]
        for auto, option, value in settings:
            if value is None:
                continue
            if not color_sensor.supports(option):
                raise CameraError(f"{self.name}: sensor does not support option {option}")
            if auto is not None and color_sensor.supports(auto):
                color_sensor.set_option(auto, 0)
            lo, hi = color_sensor.get_option_range(option).min, color_sensor.get_option_range(option).max
            if not lo <= value <= hi:
                raise CameraError(f"{self.name}: {option} {value} outside the device range [{lo}, {hi}]")
            color_sensor.set_option(option, float(value))

    def option(self, name: str) -> float:
        """Current value of an rs.option of the colour sensor, e.g. option('exposure')."""
        import pyrealsense2 as rs

        return float(self._sensors[0].get_option(getattr(rs.option, name)))

    def read(self, timeout_s: float, arrival: Callable[[], float]) -> CameraFrame | None:
        """The next complete frame set, or None after `timeout_s` without one."""
        import pyrealsense2 as rs

        deadline_ms = max(1, int(timeout_s * 1000))
        ok, frames = self._syncer.try_wait_for_frames(deadline_ms)
        if not ok:
            return None
        frames = frames.as_frameset()
        if self.depth:
            if frames.size() < 2:
                return None   # the syncer's first sets can hold one stream only
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        on_host = color.get_frame_timestamp_domain() in (rs.timestamp_domain.global_time,
                                                         rs.timestamp_domain.system_time)
        stamp = self.clock.to_host(color.get_timestamp() / 1000.0, arrival(), on_host)
        rgb = np.asanyarray(color.get_data()).copy()
        depth_mm = None
        if self.depth:
            raw = np.asanyarray(frames.get_depth_frame().get_data())
            depth_mm = (raw if self._depth_scale == DEPTH_UNIT_M else np.clip(
                np.rint(raw * (self._depth_scale / DEPTH_UNIT_M)), 0, 65535)).astype(np.uint16)
        return CameraFrame(rgb, stamp, depth_mm, color.get_frame_number())

    def hardware_reset(self) -> None:
        """USB-level reset (the device drops off the bus and re-enumerates); raises if the device has none."""
        device = self.device or self.lookup(self.serial)
        if device is None:
            raise CameraError(f"{self.name}: not connected")
        device.hardware_reset()

    def close(self) -> None:
        for sensor in self._sensors:
            for step in (sensor.stop, sensor.close):
                try:
                    step()
                except RuntimeError:   # already stopped, or the device is gone
                    pass
        self._sensors.clear()
        self._syncer = None
        self.device = None


if __name__ == "__main__":
    for row in list_devices() or [{"name": "no RealSense connected", "serial": "", "firmware": ""}]:
        print(f"{row['serial']:>16}  {row['name']}  {row['firmware']}")
