"""Camera node: one camera per process (RealSense by serial, or an OpenCV webcam), on the topic contract.

Publishes `cameras/<name>/image_raw` (rgb8), optionally `cameras/<name>/depth/image_raw` (16UC1 mm, aligned to
colour, same frame and intrinsics), `cameras/<name>/camera_info` (latched, from the device intrinsics) and
`cameras/<name>/status` (latched CameraStatus record). Run several instances with different `name` / `serial` for
several cameras (a USB reset of one camera then never stalls another).

The device is read, reset after repeated misses and reopened by robot_rl/hardware/camera_stream.py; while it is
down the status says `stale` / `resetting` and nothing is published. Stamps are the device capture times mapped to
ROS time.
"""
from __future__ import annotations

import time
from dataclasses import asdict

from rclpy.node import Node
from std_msgs.msg import String

from robot_rl.configs.camera import CameraConfig
from robot_rl.hardware.camera import CameraFrame, Intrinsics
from robot_rl.hardware.camera_stream import CameraStream, open_camera
from robot_rl.ros import contract, convert, records
from robot_rl.ros.node_runtime import declare_config, run_node


class CameraNode(Node):
    def __init__(self, device_factory=open_camera, **node_kwargs):
        super().__init__("camera", **node_kwargs)
        self.cfg = declare_config(self, CameraConfig)
        cfg = self.cfg
        self.frame_id = cfg.frame_id or f"{cfg.name}_optical_frame"
        self.pub_image = contract.publisher(self, contract.camera_image(cfg.name))
        self.pub_depth = contract.publisher(self, contract.camera_depth(cfg.name)) if cfg.depth else None
        self.pub_info = contract.publisher(self, contract.camera_info(cfg.name))
        self.pub_status = contract.publisher(self, contract.camera_status(cfg.name))
        self.stream = CameraStream(device_factory(cfg), cfg, self.get_logger(), self.publish_info, self.publish_frame,
                                   self.publish_status)
        self.fps = 0.0
        self.frames_at_status = (0, time.monotonic())
        self.publish_status()
        self.create_timer(1.0 / cfg.status_hz, self.on_status_timer)
        self.stream.start()

    def ros_now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def publish_status(self) -> None:
        status = records.CameraStatus(stamp=self.ros_now(), camera=self.cfg.name, fps=self.fps, **asdict(self.stream.snapshot()))
        self.pub_status.publish(String(data=records.encode(status)))

    def on_status_timer(self) -> None:
        frames, since = self.frames_at_status
        now = time.monotonic()
        done = self.stream.snapshot().frames
        self.fps = round((done - frames) / max(now - since, 1e-6), 2)
        self.frames_at_status = (done, now)
        self.stream.check_stale()
        self.publish_status()

    def publish_info(self, intr: Intrinsics) -> None:
        self.pub_info.publish(convert.camera_info_msg(intr, self.ros_now(), self.frame_id))

    def publish_frame(self, frame: CameraFrame) -> None:
        """A fresh frame (camera_stream.py drops repeats and old ones), stamped with its capture time on the ROS
        clock."""
        stamp = frame.host_stamp + (self.ros_now() - time.time())   # host wall clock -> ROS clock
        self.pub_image.publish(convert.image_to_msg(frame.rgb, stamp, self.frame_id))
        if self.pub_depth is not None and frame.depth_mm is not None:
            self.pub_depth.publish(convert.depth_to_msg(frame.depth_mm, stamp, self.frame_id))

    def close(self) -> None:
        self.stream.close()


def main(args=None) -> None:
    raise SystemExit(run_node(CameraNode, args))


if __name__ == "__main__":
    main()
