"""A node whose ROS/DDS teardown hangs (seen under load: Fast DDS deleting a participant for over 15 s) still ends
with its own exit code soon after its cleanup, and says why (robot_rl.ros.node_runtime.run_node)."""
import subprocess
import sys
import textwrap
import time

from robot_rl.ros.node_runtime import TEARDOWN_S

STUCK = textwrap.dedent('''
    import sys, time
    from rclpy.node import Node
    from robot_rl.ros.node_runtime import ExitRequest, run_node

    class StuckTeardown(Node):
        def __init__(self):
            super().__init__("stuck_teardown")
            self.create_timer(0.05, self.finish)

        def finish(self):
            raise ExitRequest(3)

        def close(self):
            print("cleanup done", flush=True)

        def destroy_node(self):
            time.sleep(120)   # the hang, in the teardown after the node's own cleanup
            super().destroy_node()

    sys.exit(run_node(StuckTeardown, []))
''')


def test_a_hanging_teardown_ends_with_the_nodes_exit_code():
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK], capture_output=True, text=True, timeout=90)
    took = time.monotonic() - start
    assert done.returncode == 3, done.stderr
    assert "cleanup done" in done.stdout
    assert f"teardown is still running after {TEARDOWN_S} s" in done.stderr
    assert TEARDOWN_S <= took < 60, took   # bounded, and not before the bound
