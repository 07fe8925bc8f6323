"""The simulated Panda as the MuJoCo bridge drives it (no ROS): joint and EE targets behind the safety filter's
per-tick limits, holding, and task resets that keep the clock running. The counterpart of
robot_rl/hardware/franka_robot.py, so the two drivers share robot_rl/nodes/driver_base.py."""
from __future__ import annotations

import numpy as np

from robot_rl.core.safety import SafetyFilter, SafetyLimits
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES, holding_action
from robot_rl.sim.panda_sim import PandaSim


class SimRobot:
    def __init__(self, sim: PandaSim, limits: SafetyLimits):
        self.sim = sim
        lower, upper = sim.joint_limits()
        self.safety = SafetyFilter(limits, lower, upper, forward_kinematics=sim.tcp_position_at)
        self.hold()

    def joints(self) -> np.ndarray:
        return self.sim.joint_positions()

    def hold(self) -> None:
        """Freeze the target at the measured position (reset, e-stop, faults)."""
        self.joint_target = self.sim.joint_positions()
        self.sim.set_joint_target(self.joint_target[:7], self.joint_target[7])
        self.sim.set_commanded_ee_target(*self.sim.ee_pose())
        self.hold_action = (JOINT_SPACE_NAMES, self.joint_target)  # what a tick without a new point executes

    def reset(self, seed: int) -> None:
        """Restart the task; sim time runs on (the robot clock never goes backwards)."""
        clock = self.sim.time
        self.sim.reset(seed)
        self.sim.data.time = clock
        self.hold()

    def command(self, names: tuple[str, ...], values: np.ndarray) -> np.ndarray:
        """Set one chunk point as the servo target, clipped to the per-tick limits; returns what was commanded."""
        if names == EE_SPACE_NAMES:
            if self.hold_action[0] != EE_SPACE_NAMES:  # after joint-space commands: continue from the measured pose
                self.sim.set_commanded_ee_target(*self.sim.ee_pose())
            delta = self.safety.limit_ee_delta(values)
            q, width = self.sim.apply_ee_delta(delta, clip_position=self.safety.limit_ee_target)
            target = self.safety.limit_joint_target(np.append(q, width), self.joint_target)
            executed = delta
            self.hold_action = (EE_SPACE_NAMES, holding_action(EE_SPACE_NAMES, delta))
        else:
            target = self.safety.limit_joint_target(values, self.joint_target)
            executed = target
            self.hold_action = (JOINT_SPACE_NAMES, target)
        self.joint_target = target
        self.sim.set_joint_target(target[:7], target[7])
        return executed
