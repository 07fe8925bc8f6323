"""franky-sim with one injectable fault: SIGUSR1 aborts the running motion with a reflex, the way the real robot
answers a collision. The Move command gets `kReflexAborted` (libfranka raises "motion aborted by reflex!" as a
ControlException in the client's control thread) and the robot stays in `kReflex` mode until the client sends
automatic error recovery. Each step is printed to the server log for the test.

Runs under the franky-sim venv's interpreter with franky-sim's own arguments (FrankySimServer(script=...)).
"""
import signal

from franky_sim import run_server
from franky_sim.franka_robot_protocol import (AutomaticErrorRecoveryCommand, BaseCommand, MoveStatus, RobotCommand,
                                              RobotMode)
from franky_sim.franka_robot_server import FrankaRobotServer

fault = {"requested": False, "latched": False}


def request(*_):
    fault["requested"] = True


def post_process_commands(self, _original=FrankaRobotServer._post_process_commands):
    if fault["requested"] and self.current_motion_id:
        fault["requested"], fault["latched"] = False, True
        BaseCommand.send_response(self._tcp_socket, RobotCommand.kMove, self.current_motion_id,
                                  MoveStatus.kReflexAborted)
        self.stop_motion(send_preemption_signal=False)
        self.reset_current_motion_id()
        print("fault injected: reflex, motion aborted", flush=True)
    _original(self)


def robot_state(self, _original=FrankaRobotServer.robot_state.fget):
    state = _original(self)
    return state.replace(robot_mode=RobotMode.kReflex) if fault["latched"] else state


def recover(self, server, _original=AutomaticErrorRecoveryCommand.handle):
    if fault["latched"]:
        fault["latched"] = False
        print("automatic error recovery: reflex cleared", flush=True)
    _original(self, server)


FrankaRobotServer._post_process_commands = post_process_commands
FrankaRobotServer.robot_state = property(robot_state)
AutomaticErrorRecoveryCommand.handle = recover
signal.signal(signal.SIGUSR1, request)

if __name__ == "__main__":
    run_server.main()
