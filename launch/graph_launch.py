"""What robot_rl's launch files share (a module they load, not a launch file): a graph file as launch actions.

The graph comes from the bringup's own functions, so `ros2 launch` and `python -m robot_rl.bringup` start the same
processes the same way: the graph file validated and given its shared values (`bringup.prepare`), the environment
the graph needs (`bringup.graph_environment`), the /clock remap of a namespaced graph (`bringup.remappings`).
Every executable is resolved before any node is returned, so a graph that cannot start completely starts nothing
(a missing robot_state_publisher must not leave an arm node connected to the robot). The launch ends when the
graph's `exit_when` node finishes, and stops the graph and exits 1 when a node fails.
"""
import signal
from collections.abc import Callable
from functools import partial

from ament_index_python.packages import PackageNotFoundError
from launch import LaunchContext, LaunchDescription
from launch.actions import (DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, SetEnvironmentVariable,
                            Shutdown, TimerAction)
from launch.event_handlers import OnProcessExit
from launch.events.process import ProcessExited
from launch.substitutions import LaunchConfiguration
from launch.substitutions.substitution_failure import SubstitutionFailure
from launch_ros.actions import Node
from launch_ros.substitutions import ExecutableInPackage

from robot_rl import bringup
from robot_rl.ros.child_watcher import install_reap_aware_child_watcher

ExtraNodes = Callable[[bringup.Graph], list[Node]]
# A terminal's Ctrl-C reaches every process of the group at once: a node can end on it (cleanly, or by the signal)
# before launch has handled its own. Such an end becomes a failure only if launch is not stopping this much later.
INTERRUPT_GRACE_S = 2.0


class NodeFailed(RuntimeError):
    """A node of the graph ended unexpectedly: launch logs this, stops the graph and exits 1."""


def graph_launch_description(default_graph: str, extra_nodes: ExtraNodes = lambda graph: []) -> LaunchDescription:
    """The launch arguments `graph` and `namespace`, and the graph's actions with `extra_nodes(graph)` beside them."""
    install_reap_aware_child_watcher()  # a node that ends on Ctrl-C just before launch signals it ended cleanly
    return LaunchDescription([
        DeclareLaunchArgument("graph", default_value=default_graph,
                              description="a graph of config/graphs by name, or the path of a graph file"),
        DeclareLaunchArgument("namespace", default_value="", description="robot namespace (default: the graph's)"),
        OpaqueFunction(function=graph_actions, args=[extra_nodes]),
    ])


def graph_actions(context: LaunchContext, extra_nodes: ExtraNodes) -> list:
    graph = bringup.prepare(bringup.graph_file(LaunchConfiguration("graph").perform(context)),
                            LaunchConfiguration("namespace").perform(context) or None)
    named = [(spec.key, Node(
        package="robot_rl",
        executable=spec.executable,
        name=spec.name,
        namespace=graph.namespace_of(spec),
        parameters=[str(f) for f in graph.params_files] + ([spec.params] if spec.params else []),
        remappings=bringup.remappings(graph.namespace_of(spec)),
        output="screen",
    )) for spec in graph.nodes]
    named += [(node.node_executable, node) for node in extra_nodes(graph)]
    missing = []
    for _, node in named:
        try:
            ExecutableInPackage(package=node.node_package, executable=node.node_executable).perform(context)
        except (PackageNotFoundError, SubstitutionFailure) as err:
            missing.append(f"{node.node_package}/{node.node_executable} ({err})")
    if missing:
        raise bringup.GraphError(f"{graph.source}: started nothing, {len(missing)} node(s) of the graph cannot be "
                                 f"found ({'; '.join(missing)}); install them and source their setup.bash")
    environment = bringup.graph_environment(context.environment)
    finishing = {spec.key for spec in graph.nodes if spec.name == graph.exit_when}  # in a fleet, one per robot
    exit_handlers = [OnProcessExit(target_action=node, on_exit=partial(on_node_exit, key, finishing))
                     for key, node in named]
    return ([SetEnvironmentVariable(key, value) for key, value in environment.items()]
            + [node for _, node in named] + [RegisterEventHandler(handler) for handler in exit_handlers])


def on_node_exit(key: str, finishing: set[str], event: ProcessExited, context: LaunchContext):
    """The bringup's rule: the `exit_when` node ending cleanly (in a fleet, in every robot) ends the graph; any other
    end of a node is a failure, and so is a non-zero exit while the graph stops. `finishing`: the exit_when nodes
    still running."""
    if context.is_shutdown:
        if event.returncode != 0:
            raise NodeFailed(f"node {key!r} exited with code {event.returncode} while the graph stopped")
        return None
    if key in finishing and event.returncode == 0:
        finishing.discard(key)
        return None if finishing else [Shutdown(reason=f"node {key!r} finished (the graph's exit_when)")]
    failure = f"node {key!r} exited with code {event.returncode}; stopping the graph"
    if event.returncode in (0, -signal.SIGINT):   # perhaps the terminal's Ctrl-C, not yet handled by launch
        return [TimerAction(period=INTERRUPT_GRACE_S, actions=[OpaqueFunction(function=partial(fail_unless_stopping,
                                                                                                failure))])]
    raise NodeFailed(failure)


def fail_unless_stopping(failure: str, context: LaunchContext) -> None:
    if not context.is_shutdown:
        raise NodeFailed(failure)
