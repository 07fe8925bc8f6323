"""Real Franka + RealSense graph with the real launch_ros API.

    colcon build --packages-select robot_rl && ros2 launch robot_rl franka_real.launch.py

Starts the nodes and parameter files of config/graphs/franka_real.yaml, plus robot_state_publisher with the URDF
for RViz. The graph file is the single source of truth; `python -m robot_rl.bringup` reads the same file.
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_rl.bringup import prepare

DEFAULT_GRAPH = "franka_real"


def nodes_from_graph(context, *_args, **_kwargs):
    share = Path(get_package_share_directory("robot_rl"))
    graph_file = share / "config" / "graphs" / f"{LaunchConfiguration('graph').perform(context)}.yaml"
    # validated, with the graph's shared values (control rate, step penalty) given to every node, as the bringup does
    graph = prepare(graph_file, LaunchConfiguration("namespace").perform(context) or None, base=share)
    namespace = graph.namespace
    urdf = (share / "urdf" / "panda.urdf").read_text()
    nodes = [
        Node(
            package="robot_rl",
            executable=spec.executable,
            name=spec.name,
            namespace=namespace,
            parameters=[str(f) for f in graph.params_files] + ([spec.params] if spec.params else []),
            output="screen",
        )
        for spec in graph.nodes
    ]
    nodes.append(Node(package="robot_state_publisher", executable="robot_state_publisher", namespace=namespace,
                      parameters=[{"robot_description": urdf}], output="screen"))
    return nodes


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("graph", default_value=DEFAULT_GRAPH, description="config/graphs/<graph>.yaml"),
        DeclareLaunchArgument("namespace", default_value="", description="robot namespace (default: the graph's)"),
        OpaqueFunction(function=nodes_from_graph),
    ])
