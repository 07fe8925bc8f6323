"""Simulated graph (MuJoCo bridge in place of the arm and cameras) with the real launch_ros API.

    ros2 launch robot_rl sim.launch.py graph:=sim_scripted namespace:=robot1

Starts exactly the nodes and parameter files of config/graphs/<graph>.yaml, the file `python -m robot_rl.bringup`
runs in CI, so the two cannot drift apart.
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_rl.bringup import prepare

DEFAULT_GRAPH = "sim_scripted"


def nodes_from_graph(context, *_args, **_kwargs):
    share = Path(get_package_share_directory("robot_rl"))
    graph_file = share / "config" / "graphs" / f"{LaunchConfiguration('graph').perform(context)}.yaml"
    # validated, with the graph's shared values (control rate, step penalty) given to every node, as the bringup does
    graph = prepare(graph_file, LaunchConfiguration("namespace").perform(context) or None, base=share)
    namespace = graph.namespace
    return [
        Node(
            package="robot_rl",
            executable=spec.executable,
            name=spec.name,
            namespace=namespace,
            parameters=[str(f) for f in graph.params_files] + ([spec.params] if spec.params else []),
            remappings=[("/clock", f"/{namespace.strip('/')}/clock")] if namespace else [],  # one sim clock per robot
            output="screen",
        )
        for spec in graph.nodes
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("graph", default_value=DEFAULT_GRAPH, description="config/graphs/<graph>.yaml"),
        DeclareLaunchArgument("namespace", default_value="", description="robot namespace (default: the graph's)"),
        OpaqueFunction(function=nodes_from_graph),
    ])
