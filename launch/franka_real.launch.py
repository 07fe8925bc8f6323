"""Real Franka + RealSense graph with the real launch_ros API.

    colcon build --packages-select robot_rl && ros2 launch robot_rl franka_real.launch.py

Starts the nodes and parameter files of config/graphs/franka_real.yaml, plus robot_state_publisher with the URDF
for RViz, with the bringup's validation and environment (graph_launch.py). Nothing starts unless every node,
robot_state_publisher included, can be found. `python -m robot_rl.bringup` reads the same graph file.
"""
from pathlib import Path

from launch.launch_description_sources import load_python_launch_file_as_module
from launch_ros.actions import Node

from robot_rl import bringup

DEFAULT_GRAPH = "franka_real"
graph_launch = load_python_launch_file_as_module(str(Path(__file__).with_name("graph_launch.py")))


def robot_description() -> str:
    """The URDF. Its meshes are the sim's assets, installed once, next to the code that reads them (not under
    share/): RViz gets them as file:// URIs instead of the file's package://robot_rl/robot_rl/... ones."""
    assets = bringup.PACKAGE_ROOT / "robot_rl" / "sim" / "assets" / "panda"
    return (bringup.data_root() / "urdf" / "panda.urdf").read_text().replace(
        "package://robot_rl/robot_rl/sim/assets/panda/", f"{assets.as_uri()}/")


def robot_state_publisher(graph: bringup.Graph) -> list[Node]:
    return [Node(package="robot_state_publisher", executable="robot_state_publisher", namespace=graph.namespace,
                 parameters=[{"robot_description": robot_description()}], output="screen")]


def generate_launch_description():
    return graph_launch.graph_launch_description(DEFAULT_GRAPH, robot_state_publisher)
