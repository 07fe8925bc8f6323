"""A ROS node in its own context, spun by a SingleThreadedExecutor in a background thread: how tests and benches
watch a running graph from outside, and call its services."""
from __future__ import annotations

import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


class Probe:
    def __init__(self, name: str = "test_probe", namespace: str = "", domain_id: int | None = None):
        """`domain_id`: another ROS domain than the session's (ROS_DOMAIN_ID)."""
        self.context = Context()
        rclpy.init(context=self.context, args=["--ros-args", "--disable-external-lib-logs"], domain_id=domain_id)
        self.node = Node(name, namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutting down
                break

    def collect(self, topic_name: str, record_type, qos) -> list:
        """A list that fills with every JSON record (robot_rl.ros.records) arriving on `topic_name`, decoded."""
        from std_msgs.msg import String

        from robot_rl.ros import records

        received: list = []
        self.node.create_subscription(String, topic_name,
                                      lambda m: received.append(records.decode(m.data, record_type)), qos)
        return received

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {name} not available")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {name} did not answer")
            time.sleep(0.01)
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
