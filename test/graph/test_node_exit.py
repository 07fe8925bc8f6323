"""A node that ends its own run waits until its readers acknowledged what it published (robot_rl.ros.node_runtime):
a reader whose process is stopped (its DDS threads starved, as on a busy host) still gets the last sample once it
runs again, and the wait is bounded and names the topic it gave up on."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from std_msgs.msg import String

from robot_rl.ros import contract
from robot_rl.ros.node_runtime import deliver_published
from robot_rl.ros.probe import Probe, wait_for

pytestmark = pytest.mark.graph

READER = textwrap.dedent("""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from std_msgs.msg import String
    from robot_rl.ros import contract
    rclpy.init()
    node = rclpy.create_node("exit_reader")
    node.create_subscription(String, "/exit_test/episode/status", lambda m: print(m.data, flush=True),
                             contract.EPISODE_STATUS.qos)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
""")


def test_a_stopped_reader_gets_the_last_sample_and_the_wait_is_bounded():
    writer = Probe("exit_writer")
    reader = subprocess.Popen([sys.executable, "-c", READER], stdout=subprocess.PIPE, text=True)
    try:
        pub = writer.node.create_publisher(String, "/exit_test/episode/status", contract.EPISODE_STATUS.qos)
        wait_for(lambda: pub.get_subscription_count() == 1, 60, "the reader process to match")
        pub.publish(String(data="first"))
        assert deliver_published(writer.node, 30.0) == []           # a running reader acknowledges at once
        os.kill(reader.pid, signal.SIGSTOP)
        pub.publish(String(data="last"))
        start = time.monotonic()
        late = deliver_published(writer.node, 1.0)
        waited = time.monotonic() - start
        assert late == ["/exit_test/episode/status"] and 0.9 <= waited < 5.0
        os.kill(reader.pid, signal.SIGCONT)
        assert deliver_published(writer.node, 30.0) == []
        reader.send_signal(signal.SIGINT)
        assert reader.communicate(timeout=30)[0].split() == ["first", "last"]
    finally:
        if reader.poll() is None:
            os.kill(reader.pid, signal.SIGCONT)
            reader.kill()
        writer.close()
