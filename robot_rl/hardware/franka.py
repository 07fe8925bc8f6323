"""Franka device layer on franky: one torque-mode impedance tracker at a time, a gripper thread, faults as ArmFault.

Control mode (see docs/hardware_arm.md): every motion the arm node makes is one of franky's two impedance trackers,
`JointImpedanceTrackingMotion` (joint-space chunks, resets, holding) or `CartesianImpedanceTrackingMotion`
(EE-space chunks). Both are torque-control motions, so switching between them is a torque -> torque preemption and
control modes are never mixed. References are limited SERL-style: the Cartesian tracker clips the pose error e in its
1 kHz loop (|e_t| <= translational_error_clip, |e_r| <= rotational_error_clip), and joint references are clipped here to
q_ref = q + clip(q_goal - q, -c, c), re-applied at the caller's state rate (`relimit`), so a wrong goal gives a bounded
torque tau = K (q_ref - q) - D dq, |tau| <= K c + D |dq|.

No ROS here. The layer never talks to anything but `FrankaConfig.host` (robot_rl/configs/arm.py).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import franky
import numpy as np

from robot_rl.configs.arm import FrankaConfig


class ArmFault(RuntimeError):
    """A fault from the robot: a reflex or control exception, or (connection_lost) a dead link to the FCI."""

    def __init__(self, message: str, connection_lost: bool = False):
        super().__init__(message)
        self.connection_lost = connection_lost


@dataclass
class ArmState:
    q: np.ndarray  # (7,) rad
    dq: np.ndarray  # (7,) rad/s
    ee_position: np.ndarray  # (3,) m, base frame
    ee_quat_wxyz: np.ndarray  # (4,)


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _is_network_error(err: BaseException) -> bool:
    # libfranka raises NetworkException from the control thread and a bare RuntimeError("Net Exception") on reads.
    return isinstance(err, franky.NetworkException) or (type(err) is RuntimeError and "Net" in str(err))


def _quat_wxyz(affine: franky.Affine) -> np.ndarray:
    x, y, z, w = affine.quaternion  # franky (Eigen) order is x, y, z, w
    return np.array([w, x, y, z])


def _affine(position: np.ndarray, quat_wxyz: np.ndarray) -> franky.Affine:
    w, x, y, z = quat_wxyz
    return franky.Affine(np.asarray(position, dtype=float), np.array([x, y, z, w]))


class FrankaArm:
    """The franky Robot behind the arm node: connect, read, track joint or pose references, hold, stop, recover."""

    def __init__(self, cfg: FrankaConfig):
        self.cfg = cfg
        self.lower, self.upper, self.home = cfg.joint_arrays()
        self.robot: franky.Robot | None = None
        self.motion = None  # the active tracking motion (joint or Cartesian), None when the robot is idle
        self.space: str | None = None  # "joint" | "ee"
        self.joint_goal = np.zeros(7)  # the joint tracker's goal, before reference limiting
        self._lock = threading.RLock()  # guards (re)connecting: the FCI takes one client at a time
        self._reconnecting = False

    # ---- connection ----------------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.robot is not None

    def connect(self) -> None:
        """Open the FCI connection unless open (a few ms on a reachable robot); raises ArmFault(connection_lost=True)."""
        realtime = franky.RealtimeConfig.Enforce if self.cfg.realtime == "enforce" else franky.RealtimeConfig.Ignore
        with self._lock:
            if self.robot is not None:
                return
            try:
                robot = franky.Robot(self.cfg.host, realtime_config=realtime)
                robot.set_collision_behavior(self.cfg.torque_threshold, self.cfg.force_threshold)
            except Exception as err:  # franky.NetworkException, RealtimeException, IncompatibleVersionException, ...
                raise ArmFault(f"cannot connect to {self.cfg.host}: {_describe(err)}", connection_lost=True) from None
            self.robot, self.motion, self.space = robot, None, None

    def drop_connection(self) -> None:
        with self._lock:
            self.robot, self.motion, self.space = None, None, None

    def reconnect_in_background(self, period_s: float, on_done) -> None:
        """Retry `connect` every `period_s` in a daemon thread until it works; then call on_done()."""
        if self._reconnecting:
            return
        self._reconnecting = True

        def retry():
            while self._reconnecting:
                try:
                    self.connect()
                except ArmFault:
                    time.sleep(period_s)
                    continue
                self._reconnecting = False
                on_done()

        threading.Thread(target=retry, name="franka-reconnect", daemon=True).start()

    def close(self) -> None:
        self._reconnecting = False
        if self.connected:
            try:
                self.stop()
            except ArmFault:
                pass
        self.drop_connection()

    # ---- state ---------------------------------------------------------------------------------------------------
    def read(self) -> ArmState:
        robot = self._robot()
        try:
            state = robot.state
            pose = state.O_T_EE
            return ArmState(np.array(state.q), np.array(state.dq), np.array(pose.translation), _quat_wxyz(pose))
        except Exception as err:
            raise self._fault(err) from None

    def tcp_position_at(self, q: np.ndarray) -> np.ndarray:
        """Forward kinematics of the connected robot's model (for the safety filter's workspace check)."""
        robot = self._robot()
        state = robot.state
        return np.array(robot.model.pose(franky.Frame.EndEffector, np.asarray(q, float), state.F_T_EE,
                                         state.EE_T_K).translation)

    def check(self) -> None:
        """Raise the fault the control thread stored (a reflex, a control exception, a lost link), if any."""
        robot = self._robot()
        try:
            if self.motion is not None:
                robot.poll_motion()  # re-raises an exception stored by the control thread
                if not robot.is_in_control:
                    robot.join_motion(0.0)
                    raise ArmFault("the tracking motion ended without an error (robot left control)")
        except ArmFault:
            self.motion, self.space = None, None
            raise
        except Exception as err:
            raise self._fault(err) from None

    # ---- motion --------------------------------------------------------------------------------------------------
    def track_joints(self, q_target: np.ndarray, q_measured: np.ndarray) -> None:
        """Joint impedance goal; the reference sent is limited to q_measured +- joint_error_clip_rad (see relimit)."""
        self._ensure("joint", q_measured)
        self.joint_goal = np.clip(np.asarray(q_target, float), self.lower, self.upper)
        self.relimit(q_measured)

    def relimit(self, q_measured: np.ndarray) -> None:
        """Re-apply the joint reference limit at the caller's rate (the node: every state tick), so that a clipped
        reference keeps moving with the arm toward the goal: q_ref = q + clip(q_goal - q, -c, c)."""
        if self.space != "joint":
            return
        c = self.cfg.joint_error_clip_rad
        q_ref = q_measured + np.clip(self.joint_goal - q_measured, -c, c)
        self._call(lambda: self.motion.set_reference(franky.JointReference(q=q_ref)))

    def track_pose(self, position: np.ndarray, quat_wxyz: np.ndarray, q_measured: np.ndarray) -> None:
        """Cartesian impedance reference; the tracker clips the pose error in its 1 kHz loop."""
        self._ensure("ee", q_measured)
        target = _affine(position, quat_wxyz)
        self._call(lambda: self.motion.set_reference(franky.CartesianReference(target=target)))

    def hold(self, state: ArmState) -> None:
        """Reference := the measured pose, picked up by the next 1 kHz cycle (starts a joint tracker if idle)."""
        if self.space == "ee":
            self.track_pose(state.ee_position, state.ee_quat_wxyz, state.q)
        else:
            self.track_joints(state.q, state.q)

    def stop(self) -> None:
        """End the tracker with franky's torque stop (damping to rest) and leave the robot idle (it holds itself)."""
        if self.motion is None:
            return
        robot = self._robot()
        self.motion, self.space = None, None
        try:
            if robot.is_in_control:
                robot.move(franky.TorqueStopMotion(), asynchronous=True)
            robot.join_motion()
        except franky.ControlException as err:
            if "preempted" not in str(err):
                raise self._fault(err) from None
        except Exception as err:
            raise self._fault(err) from None

    def recover(self) -> None:
        """Clear reflexes (libfranka automatic error recovery); a tracker still in control is kept."""
        robot = self._robot()
        try:
            if robot.is_in_control and self.motion is not None:
                return  # nothing to clear (e.g. after an e-stop, which holds with the running tracker)
            self.motion, self.space = None, None
            robot.recover_from_errors()
        except Exception as err:
            raise self._fault(err) from None

    def _ensure(self, space: str, q_measured: np.ndarray) -> None:
        """Start the tracker of `space`, seeded at the measured state; torque -> torque preemption if switching."""
        if self.space == space and self.motion is not None:
            return
        cfg = self.cfg
        if space == "joint":
            motion = franky.JointImpedanceTrackingMotion(
                stiffness=np.asarray(cfg.joint_stiffness, float), max_delta_tau=cfg.max_delta_tau,
                lower_joint_limits=self.lower, upper_joint_limits=self.upper)
            motion.set_reference(franky.JointReference(q=np.asarray(q_measured, float)))
        else:
            motion = franky.CartesianImpedanceTrackingMotion(
                translational_stiffness=cfg.translational_stiffness, rotational_stiffness=cfg.rotational_stiffness,
                max_delta_tau=cfg.max_delta_tau, lower_joint_limits=self.lower, upper_joint_limits=self.upper,
                translational_error_clip=np.full(3, cfg.translational_error_clip_m),
                rotational_error_clip=np.full(3, cfg.rotational_error_clip_rad))
            robot = self._robot()
            self._call(lambda: motion.set_reference(franky.CartesianReference(target=robot.current_pose.end_effector_pose)))
        robot = self._robot()
        self._call(lambda: robot.move(motion, asynchronous=True))
        self.motion, self.space = motion, space

    def _robot(self) -> franky.Robot:
        robot = self.robot
        if robot is None:
            raise ArmFault(f"not connected to {self.cfg.host}", connection_lost=True)
        return robot

    def _call(self, fn) -> None:
        try:
            fn()
        except ValueError as err:  # franky validates references (finite, shapes): a bad target, not a fault
            raise ArmFault(f"reference refused: {err}") from None
        except Exception as err:
            raise self._fault(err) from None

    def _fault(self, err: BaseException) -> ArmFault:
        self.motion, self.space = None, None
        if _is_network_error(err):
            self.drop_connection()
            return ArmFault(f"connection lost: {_describe(err)}", connection_lost=True)
        return ArmFault(_describe(err))


class GripperWorker:
    """Franka Hand calls in their own thread: each is a ~0.1 s network round trip (franky issue #35).

    The arm node only ever calls `command(width)` (latest wins) and reads the cached `width`; the thread sends a
    move (or a force grasp for small widths) when the target changed by more than the deadband, and polls the width
    otherwise.
    """

    def __init__(self, cfg: FrankaConfig, poll_period_s: float = 0.05):
        self.cfg = cfg
        self.poll_period_s = poll_period_s
        self.width = float("nan")
        self.error = ""
        self._target: float | None = None
        self._sent: float | None = None
        self._cond = threading.Condition()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="franka-gripper", daemon=True)
        self._thread.start()

    def command(self, width: float) -> None:
        with self._cond:
            self._target = float(width)
            self._cond.notify()

    def cancel(self) -> None:
        """Forget the pending target (e-stop): the fingers stay where the last finished command left them."""
        with self._cond:
            self._target = self._sent

    def close(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        gripper = None
        while self._running:
            try:
                if gripper is None:
                    gripper = franky.Gripper(self.cfg.host)
                    self.error = ""
                with self._cond:
                    target = self._target
                    due = target is not None and (self._sent is None or abs(target - self._sent) > self.cfg.gripper_deadband_m)
                    if not due:
                        self._cond.wait(self.poll_period_s)
                if due:
                    self._sent = target
                    if target < self.cfg.gripper_grasp_below_m:
                        # grasp with force; wide epsilons accept any object width between target and fully open
                        gripper.grasp(target, self.cfg.gripper_speed, self.cfg.gripper_force, epsilon_inner=0.1,
                                      epsilon_outer=0.1)
                    else:
                        gripper.move(target, self.cfg.gripper_speed)
                self.width = float(gripper.width)
            except Exception as err:  # GripperException, NetworkException: report, reconnect after a pause
                self.error = _describe(err)
                gripper = None
                time.sleep(1.0)
