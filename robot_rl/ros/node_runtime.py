"""What every robot_rl node shares: typed configuration from ROS parameters, and a clean run/shutdown.

Each node's parameters are one pydantic model. Its fields are declared as ROS parameters (nested models as
`section.field`), values from `--params-file` / `-p` are validated by the model, and an unknown key, a wrong type or an
out-of-range value stops the node before it starts anything, with a message that names the key and the file.
"""
from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from typing import TypeVar

import rclpy
from pydantic import BaseModel, ValidationError
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.duration import Duration
from rclpy.node import Node

from robot_rl.configs import flatten_defaults, unflatten
from robot_rl.ros import records

ConfigT = TypeVar("ConfigT", bound=BaseModel)
RecordT = TypeVar("RecordT", bound=records.Record)
ROS_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")
STUCK_STOP_S = 5.0  # a node still stopping after this long prints every thread's stack (launch escalates to SIGTERM)
DELIVER_S = 3.0    # how long a node that ends its own run waits for its readers to acknowledge what it published
TEARDOWN_S = 4.0   # the ROS/DDS teardown after a node's own cleanup; launch escalates to SIGTERM 5 s after SIGINT


class ConfigError(ValueError):
    pass


def params_files(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--params-file"]


def declare_config(node: Node, model_cls: type[ConfigT]) -> ConfigT:
    """Declare the model's fields as parameters, read them back and validate; raises ConfigError."""
    where = ", ".join(params_files(sys.argv)) or "command line"
    defaults = flatten_defaults(model_cls)
    known = set(defaults) | set(ROS_BUILTIN_PARAMETERS)
    unknown = sorted(
        k for k in node._parameter_overrides if k not in known and not k.startswith("qos_overrides.")
    )
    if unknown:
        raise ConfigError(f"{node.get_fully_qualified_name()}: unknown parameter(s) {unknown} in {where}")
    values = {}
    for key, default in defaults.items():
        descriptor = ParameterDescriptor(dynamic_typing=True)  # types are checked by the model, with clear errors
        param = node.declare_parameter(key, default, descriptor) if default is not None else node.declare_parameter(
            key, descriptor=descriptor
        )
        values[key] = param.value
    try:
        return model_cls.model_validate(unflatten(values))
    except ValidationError as err:
        problems = "; ".join(f"'{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in err.errors())
        raise ConfigError(f"{node.get_fully_qualified_name()}: bad parameter {problems} (from {where})") from None


def decode_or_log(node: Node, text: str, record_type: type[RecordT]) -> RecordT | None:
    """A JSON record validated against its schema, or None after an error log naming what was wrong (throttled to
    one a second): a bad record from another process never raises into a node's callback."""
    try:
        return records.decode(text, record_type)
    except records.RecordError as err:
        node.get_logger().error(f"ignored {record_type.__name__} record: {err}", throttle_duration_sec=1.0)
        return None


class StopSignals:
    """SIGINT / SIGTERM for one node process: the first one stops the node (SIGINT: KeyboardInterrupt out of the spin,
    SIGTERM: rclpy shutdown), later ones are ignored. A terminal's Ctrl-C reaches the whole process group and
    `ros2 launch` then sends its own SIGINT (and SIGTERM after a grace period): a second signal must not break the
    cleanup half-way (a renderer half-closed, a gripper thread never joined) with a KeyboardInterrupt traceback.

    Installed before `rclpy.init`, so rclpy's own handlers (which wake a waiting executor) chain to these.
    """

    def __init__(self) -> None:
        self.stopping = False
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def begin(self) -> None:
        """The node is stopping: from here on a signal must not interrupt the cleanup."""
        self.stopping = True
        faulthandler.dump_traceback_later(STUCK_STOP_S)

    def done(self) -> None:
        """The node has stopped: ignore stop signals for the rest of the process. The interpreter's own teardown
        (torch, MuJoCo's renderer, DDS: seconds under load) restores the default handlers, so a Ctrl-C or launch's
        SIGINT arriving then would kill the process and a clean stop would read as a crash (exit code -2)."""
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _on_signal(self, signum: int, _frame) -> None:
        if self.stopping:
            return
        self.begin()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        rclpy.try_shutdown()


class ExitRequest(Exception):
    """Raised inside a callback to end the node's spin with an exit code."""

    def __init__(self, code: int = 0):
        super().__init__(code)
        self.code = code


def deliver_published(node: Node, timeout_s: float = DELIVER_S) -> list[str]:
    """Wait until every reliable reader acknowledged what the node published, `timeout_s` at most in all; the topics
    still unacknowledged. A node that ends its own run (the episode manager after its last episode) calls this
    before its process exits: the exit takes samples not yet acknowledged with it, and a reader whose DDS threads
    were starved on a busy host would never get them (the last episode's `ended` status, and with it the operator's
    verdict in the reward node)."""
    deadline = time.monotonic() + timeout_s
    late = []
    for pub in node.publishers:
        left = max(0.0, deadline - time.monotonic())
        if not pub.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))):
            late.append(pub.topic_name)
    return late


def run_node(node_factory, args: list[str] | None = None) -> int:
    """Create the node, spin it on a SingleThreadedExecutor until SIGINT/SIGTERM or ExitRequest; return exit code.

    A node may define `loop(executor)` to own its main loop (the bridge steps physics there); otherwise it spins.
    """
    stop = StopSignals()
    try:
        rclpy.init(args=args if args is not None else sys.argv)
    except _rclpy.RCLError as err:  # e.g. a params file rcl cannot parse: the message names the file and line
        print(f"[robot_rl] configuration error: {err}", file=sys.stderr, flush=True)
        return 2
    code = 0
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = node_factory()
        executor.add_node(node)
        if hasattr(node, "loop"):
            node.loop(executor)
        else:
            executor.spin()
    except ConfigError as err:
        print(f"[robot_rl] configuration error: {err}", file=sys.stderr, flush=True)
        code = 2
    except ExitRequest as req:
        code = req.code
        if node is not None and (late := deliver_published(node)):
            node.get_logger().warning(f"exiting with samples not acknowledged by every reader after {DELIVER_S} s "
                                      f"on {late}")
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    except _rclpy.RCLError:
        if rclpy.ok():
            raise
        code = 0  # SIGTERM's shutdown landed between two waits of the executor: a clean stop, not an error
    except RuntimeError as err:
        if not stop.stopping:
            raise
        # a stop signal's KeyboardInterrupt raised inside a native call (rclpy's take_message converting its
        # arguments), which pybind11 turns into "Unable to convert call argument": a clean stop, said plainly
        print(f"[robot_rl] stopped by a signal that interrupted a ROS call ({err})", file=sys.stderr, flush=True)
        code = 0
    finally:
        stop.begin()
        if node is not None and hasattr(node, "close"):
            node.close()   # the node's own cleanup (files written, hardware stopped): never cut short
        bound = threading.Timer(TEARDOWN_S, exit_stuck_teardown, (code,))
        bound.daemon = True
        bound.start()
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        bound.cancel()
        stop.done()
    return code


def exit_stuck_teardown(code: int) -> None:
    """The ROS/DDS teardown has not finished in TEARDOWN_S: end the process with the node's exit code. On a busy
    host Fast DDS once took over 15 s to delete a reward node's participant after launch's SIGINT, and launch
    killed it (exit code -9, a failed graph stop); the node's own cleanup had finished before, so nothing is lost."""
    print(f"[robot_rl] the ROS/DDS teardown is still running after {TEARDOWN_S} s; exiting with code {code} (the "
          "node's own cleanup had finished)", file=sys.stderr, flush=True)
    os._exit(code)
