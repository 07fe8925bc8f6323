"""Message <-> core conversions. Every decoder validates and raises ConversionError with a reason; nodes turn that
into a counted rejection, never into a crash."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_rl.core.types import ActionChunk
from robot_rl.hardware.camera import Intrinsics

IMAGE_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}
MAX_IMAGE_PIXELS = 4096 * 4096


class ConversionError(ValueError):
    pass


def to_time(seconds: float) -> Time:
    ns = round(seconds * 1e9)  # round once in integer ns: 6.9999999999 s becomes 7 s, not 6 s + 1e9 ns → 6 s
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def from_time(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_duration(seconds: float) -> Duration:
    ns = round(seconds * 1e9)
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def from_duration(d: Duration) -> float:
    return d.sec + d.nanosec * 1e-9


# ---- images ---------------------------------------------------------------------------------------------------------
def _image_msg(pixels: np.ndarray, encoding: str, stamp: float, frame_id: str) -> Image:
    msg = Image()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = pixels.strides[0]  # bytes per row of the contiguous array
    msg.data = pixels.tobytes()  # bytes, not ndarray: 0.2 ms instead of 49 ms
    return msg


def image_to_msg(rgb: np.ndarray, stamp: float, frame_id: str) -> Image:
    return _image_msg(np.ascontiguousarray(rgb, dtype=np.uint8), "rgb8", stamp, frame_id)


def depth_to_msg(depth_mm: np.ndarray, stamp: float, frame_id: str) -> Image:
    """16UC1 depth in millimetres (the sensor_msgs convention), aligned to the colour image of the same frame."""
    return _image_msg(np.ascontiguousarray(depth_mm, dtype="<u2"), "16UC1", stamp, frame_id)


def msg_to_image(msg: Image, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """(H, W, 3) uint8 RGB view of an rgb8/bgr8 image; rejects anything else with the reason."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ConversionError(f"image encoding {msg.encoding!r}, expected rgb8 or bgr8")
    if msg.height == 0 or msg.width == 0 or msg.height * msg.width > max_pixels:
        raise ConversionError(f"image size {msg.width}x{msg.height} outside 1..{max_pixels} pixels")
    if msg.step != msg.width * 3:
        raise ConversionError(f"image step {msg.step} != width*3 = {msg.width * 3}")
    expected = msg.height * msg.step
    if len(msg.data) != expected:
        raise ConversionError(f"image data has {len(msg.data)} bytes, header says {expected}")
    img = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
    return img[..., ::-1] if msg.encoding == "bgr8" else img


def camera_info_msg(intr: Intrinsics, stamp: float, frame_id: str) -> CameraInfo:
    """A device's calibration, or `Intrinsics.ideal` for webcams without one and rendered cameras."""
    msg = CameraInfo()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = intr.width, intr.height
    msg.distortion_model = intr.model
    msg.d = [float(c) for c in intr.coeffs]
    msg.k = [intr.fx, 0.0, intr.ppx, 0.0, intr.fy, intr.ppy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intr.fx, 0.0, intr.ppx, 0.0, 0.0, intr.fy, intr.ppy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


# ---- robot state ----------------------------------------------------------------------------------------------------
def joint_state_msg(names, position, velocity, stamp: float) -> JointState:
    msg = JointState()
    msg.header.stamp = to_time(stamp)
    msg.name = list(names)
    msg.position = [float(x) for x in position]
    msg.velocity = [float(x) for x in velocity]
    return msg


def pose_msg(position, quat_wxyz, stamp: float, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    q.w, q.x, q.y, q.z = (float(v) for v in quat_wxyz)
    return msg


def msg_to_pose(msg: PoseStamped) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """(position, quaternion wxyz) of a PoseStamped."""
    p, q = msg.pose.position, msg.pose.orientation
    return (p.x, p.y, p.z), (q.w, q.x, q.y, q.z)


# ---- action chunks --------------------------------------------------------------------------------------------------
def chunk_to_msg(chunk: ActionChunk) -> JointTrajectory:
    """JointTrajectory with time_from_start=(i+1)*dt and finite-difference velocities (so ros2_control's JTC can
    consume joint-space chunks with cubic interpolation)."""
    msg = JointTrajectory()
    msg.header.stamp = to_time(chunk.stamp)
    msg.header.frame_id = chunk.source
    msg.joint_names = list(chunk.names)
    points = np.asarray(chunk.points, dtype=float)
    velocities = np.gradient(points, chunk.dt, axis=0) if len(points) > 1 else np.zeros_like(points)
    for i, (pos, vel) in enumerate(zip(points, velocities)):
        pt = JointTrajectoryPoint()
        pt.positions = pos.tolist()
        pt.velocities = vel.tolist()
        pt.time_from_start = to_duration((i + 1) * chunk.dt)
        msg.points.append(pt)
    return msg


def msg_to_chunk(msg: JointTrajectory) -> ActionChunk:
    """Decode a chunk; the time step comes from time_from_start, which must be (i+1)*dt."""
    names = tuple(msg.joint_names)
    if not msg.points:
        raise ConversionError("chunk has no points")
    rows = [list(p.positions) for p in msg.points]
    if any(len(r) != len(names) for r in rows):
        raise ConversionError(f"a point has {min(map(len, rows))}..{max(map(len, rows))} values for {len(names)} names")
    times = np.array([from_duration(p.time_from_start) for p in msg.points])
    dt = times[0]
    if not dt > 0 or not np.allclose(times, dt * np.arange(1, len(times) + 1), atol=1e-6):
        raise ConversionError("time_from_start must be (i+1)*dt with dt > 0")
    return ActionChunk(
        stamp=from_time(msg.header.stamp),
        dt=float(dt),
        names=names,
        points=np.array(rows, dtype=float),
        source=msg.header.frame_id or "policy",
    )
