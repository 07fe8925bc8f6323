"""Simulated graph (MuJoCo bridge in place of the arm and cameras) with the real launch_ros API.

    ros2 launch robot_rl sim.launch.py graph:=sim_scripted namespace:=robot1

Starts exactly the nodes and parameter files of config/graphs/<graph>.yaml (or graph:=<path of a graph file>), the
file `python -m robot_rl.bringup` runs, with the bringup's validation and environment; ends with the graph's
`exit_when` node (graph_launch.py).
"""
from pathlib import Path

from launch.launch_description_sources import load_python_launch_file_as_module

DEFAULT_GRAPH = "sim_scripted"
graph_launch = load_python_launch_file_as_module(str(Path(__file__).with_name("graph_launch.py")))


def generate_launch_description():
    return graph_launch.graph_launch_description(DEFAULT_GRAPH)
