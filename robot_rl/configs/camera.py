"""Camera node parameters (robot_rl.nodes.camera), importable without pyrealsense2 or OpenCV."""
from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


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
