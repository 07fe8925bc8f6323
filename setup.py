"""ament_python package setup: one console script per node; launch/, config/ and urdf/ under share/robot_rl (the
launch files and `bringup.data_root()` read them there); the sim assets once, with the code that reads them."""
import os
from glob import glob

from setuptools import find_packages, setup

package_name = "robot_rl"
here = os.path.dirname(os.path.abspath(__file__))


def node_executables() -> dict:
    """Read robot_rl/nodes/__init__.py's registry without importing the package (no rclpy at build time)."""
    scope: dict = {}
    with open(os.path.join(here, "robot_rl", "nodes", "__init__.py")) as f:
        exec(f.read(), scope)
    return scope["NODE_EXECUTABLES"]


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    package_data={"robot_rl.sim": ["assets/**/*"]},  # read by robot_rl/sim/robot.py, next to it
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        (os.path.join("share", package_name), ["package.xml"]),
        (os.path.join("share", package_name, "launch"), glob("launch/*.py")),
        (os.path.join("share", package_name, "config"), glob("config/*.yaml") + glob("config/*.xml")),
        (os.path.join("share", package_name, "config", "graphs"), glob("config/graphs/*.yaml")),
        (os.path.join("share", package_name, "urdf"), glob("urdf/*.urdf")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="robot_rl developers",
    maintainer_email="dev@robot-rl.local",
    description="RL fine-tuning of generative chunk policies on a Franka arm, with a MuJoCo bridge for CI.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{exe} = {module}:main" for exe, module in node_executables().items()]
        + ["robot-rl = robot_rl.commands:main"],
    },
)
