"""A real node class in its own rclpy context, spun in a thread of the test process, so a test can hand it a fake
device layer (camera, teleop device) and watch it over DDS."""
from __future__ import annotations

import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter


class NodeInThread:
    """A real node class in its own rclpy context, spun in a thread, so a test can hand it a device layer
    (`node_cls(device_factory=..., context=..., parameter_overrides=...)`, or another factory the node takes, e.g.
    the reward node's `source_factory`)."""

    def __init__(self, node_cls, params: dict, device_factory=None, namespace: str = "", **factories):
        self.context = Context()
        rclpy.init(context=self.context)
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        if device_factory is not None:
            factories["device_factory"] = device_factory
        self.node = node_cls(**factories, context=self.context, parameter_overrides=overrides, namespace=namespace)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                break

    def close(self):
        getattr(self.node, "close", lambda: None)()  # a node with a device layer closes it
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=2)
