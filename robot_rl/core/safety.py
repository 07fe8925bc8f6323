"""Safety filter shared by the real arm node and the MuJoCo bridge.

Two stages:
- `check_chunk` validates a whole chunk when it arrives (finite values, names, shape, time step, jumps). A chunk that
  fails is rejected whole and the reason is counted; nothing of it is executed.
- `limit_step` bounds the one action executed this control tick (per-step clip, joint limits, workspace box).
Neither raises: bad input becomes a `Verdict` with a reason, so the control loop never sees an exception.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from robot_rl.core.types import ActionChunk, action_space_of


class SafetyLimits(BaseModel, extra="forbid"):
    """All limits are parameters (config/*.yaml, `safety.*`)."""

    max_ee_step_m: float = Field(0.01, gt=0, description="largest EE translation per control step")
    max_ee_step_rad: float = Field(0.06, gt=0, description="largest EE rotation per control step")
    max_joint_step_rad: float = Field(0.1, gt=0, description="largest arm joint change per control step")
    jump_reject_factor: float = Field(3.0, ge=1, description="a step above factor x limit rejects the whole chunk")
    workspace_min: tuple[float, float, float] = (0.2, -0.4, 0.0)
    workspace_max: tuple[float, float, float] = (0.8, 0.4, 0.7)
    gripper_min: float = 0.0
    gripper_max: float = 0.08
    max_horizon: int = Field(128, ge=1)
    max_stamp_age_s: float = Field(0.5, gt=0, description="chunks computed from older observations are rejected")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


OK = Verdict(True)


class SafetyFilter:
    """Validates chunks and bounds every executed action; counts every rejection and clip by reason."""

    def __init__(
        self,
        limits: SafetyLimits,
        joint_lower: np.ndarray,
        joint_upper: np.ndarray,
        forward_kinematics: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.limits = limits
        self.joint_lower = np.asarray(joint_lower, dtype=float)  # (8,) arm joints + gripper width
        self.joint_upper = np.asarray(joint_upper, dtype=float)
        self.forward_kinematics = forward_kinematics  # q(7,) -> TCP position (3,), for joint-space workspace checks
        self.rejections: Counter[str] = Counter()
        self.clips: Counter[str] = Counter()
        self._ws_lo = np.asarray(limits.workspace_min, dtype=float)
        self._ws_hi = np.asarray(limits.workspace_max, dtype=float)

    # ---- stage 1: whole chunk -------------------------------------------------------------------------------------
    def check_chunk(self, chunk: ActionChunk, now: float, current_joints: np.ndarray) -> Verdict:
        verdict = self._check_chunk(chunk, now, np.asarray(current_joints, dtype=float))
        if not verdict.ok:
            self.rejections[verdict.reason.split(":")[0]] += 1
        return verdict

    def _check_chunk(self, chunk: ActionChunk, now: float, current_joints: np.ndarray) -> Verdict:
        space = action_space_of(chunk.names)
        if space is None:
            return Verdict(False, f"wrong_names: {list(chunk.names)} is neither the joint nor the EE convention")
        points = np.asarray(chunk.points)
        if points.ndim != 2 or points.shape[1] != len(chunk.names):
            return Verdict(False, f"wrong_shape: points {points.shape} for {len(chunk.names)} names")
        if not 1 <= points.shape[0] <= self.limits.max_horizon:
            return Verdict(False, f"wrong_length: {points.shape[0]} points (1..{self.limits.max_horizon})")
        if not np.all(np.isfinite(points)):
            return Verdict(False, "non_finite: NaN or inf in the points")
        if not (np.isfinite(chunk.dt) and chunk.dt > 0):
            return Verdict(False, f"bad_dt: time step {chunk.dt}")
        if not np.isfinite(chunk.stamp) or now - chunk.stamp > self.limits.max_stamp_age_s:
            return Verdict(False, f"stale: computed from an observation {now - chunk.stamp:.3f} s old")
        gripper = points[:, -1]
        if np.any(gripper < self.limits.gripper_min - 1e-6) or np.any(gripper > self.limits.gripper_max + 1e-6):
            return Verdict(False, f"gripper_range: width outside [{self.limits.gripper_min}, {self.limits.gripper_max}]")
        if space == "ee":
            return self._check_ee_jumps(points)
        return self._check_joint_chunk(points, current_joints)

    def _check_ee_jumps(self, points: np.ndarray) -> Verdict:
        factor = self.limits.jump_reject_factor
        translation = np.linalg.norm(points[:, 0:3], axis=1)
        rotation = np.linalg.norm(points[:, 3:6], axis=1)
        if np.any(translation > factor * self.limits.max_ee_step_m):
            return Verdict(False, f"jump: EE step {translation.max():.4f} m > {factor} x {self.limits.max_ee_step_m}")
        if np.any(rotation > factor * self.limits.max_ee_step_rad):
            return Verdict(False, f"jump: EE rotation {rotation.max():.4f} rad > {factor} x {self.limits.max_ee_step_rad}")
        return OK

    def _check_joint_chunk(self, points: np.ndarray, current_joints: np.ndarray) -> Verdict:
        arm = points[:, :7]
        if np.any(arm < self.joint_lower[:7] - 1e-6) or np.any(arm > self.joint_upper[:7] + 1e-6):
            return Verdict(False, "joint_limits: a target lies outside the joint limits")
        path = np.vstack([current_joints[None, :7], arm])
        steps = np.abs(np.diff(path, axis=0)).max(axis=1)
        bound = self.limits.jump_reject_factor * self.limits.max_joint_step_rad
        if np.any(steps > bound):
            return Verdict(False, f"jump: joint step {steps.max():.3f} rad > {bound:.3f}")
        if self.forward_kinematics is not None:
            for q in arm:
                tcp = self.forward_kinematics(q)
                if np.any(tcp < self._ws_lo - 1e-6) or np.any(tcp > self._ws_hi + 1e-6):
                    return Verdict(False, f"workspace: TCP target {np.round(tcp, 3).tolist()} outside the box")
        return OK

    # ---- stage 2: the one action executed this tick --------------------------------------------------------------
    def limit_ee_delta(self, delta: np.ndarray) -> np.ndarray:
        """Clip an EE delta (7,) to the per-step limits and the gripper range."""
        delta = np.array(delta, dtype=float)
        delta[0:3] = self._clip_norm(delta[0:3], self.limits.max_ee_step_m, "ee_step")
        delta[3:6] = self._clip_norm(delta[3:6], self.limits.max_ee_step_rad, "ee_rotation")
        delta[6] = self._clip_scalar(delta[6], self.limits.gripper_min, self.limits.gripper_max, "gripper")
        return delta

    def limit_ee_target(self, position: np.ndarray) -> np.ndarray:
        """Clip an absolute TCP target position to the workspace box."""
        clipped = np.clip(position, self._ws_lo, self._ws_hi)
        if not np.allclose(clipped, position):
            self.clips["workspace"] += 1
        return clipped

    def limit_joint_target(self, target: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """Bound a joint target (8,) to the per-step change from `previous` and to the joint limits."""
        target = np.array(target, dtype=float)
        previous = np.asarray(previous, dtype=float)
        step = np.clip(target[:7] - previous[:7], -self.limits.max_joint_step_rad, self.limits.max_joint_step_rad)
        if not np.allclose(step, target[:7] - previous[:7]):
            self.clips["joint_step"] += 1
        target[:7] = previous[:7] + step
        bounded = np.clip(target, self.joint_lower, self.joint_upper)
        if not np.allclose(bounded, target):
            self.clips["joint_limits"] += 1
        return bounded

    def _clip_norm(self, v: np.ndarray, bound: float, name: str) -> np.ndarray:
        norm = float(np.linalg.norm(v))
        if norm <= bound:
            return v
        self.clips[name] += 1
        return v * (bound / norm)

    def _clip_scalar(self, x: float, lo: float, hi: float, name: str) -> float:
        clipped = min(max(x, lo), hi)
        if clipped != x:
            self.clips[name] += 1
        return clipped

    def report(self) -> dict:
        return {"rejected": dict(self.rejections), "clipped": dict(self.clips)}
