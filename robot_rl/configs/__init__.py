"""Typed parameters of every node, one pydantic model per node, importable without rclpy, torch or device libraries:
the bringup and the launch files validate a whole graph with them before any process starts."""
from __future__ import annotations

import importlib
import re

from pydantic import BaseModel

ROS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a node name, or one token of a namespace


def is_namespace(namespace: str) -> bool:
    """A ROS namespace without its leading slash ("robot1", "lab/robot1"); "" is the root."""
    return not namespace or all(ROS_NAME.match(token) for token in namespace.split("/"))

# executable -> "module of robot_rl.configs:class" (the executables themselves: robot_rl/nodes/__init__.py)
NODE_CONFIGS: dict[str, str] = {
    "mujoco_bridge": "bridge:BridgeConfig",
    "arm": "arm:ArmConfig",
    "camera": "camera:CameraConfig",
    "teleop": "teleop:TeleopConfig",
    "policy": "policy:PolicyConfig",
    "reward": "reward:RewardConfig",
    "learner": "learner:LearnerConfig",
    "episode_manager": "episode:EpisodeConfig",
    "recorder": "recorder:RecorderConfig",
}


def config_model(executable: str) -> type[BaseModel]:
    module, cls = NODE_CONFIGS[executable].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def flatten_defaults(model_cls: type[BaseModel], prefix: str = "") -> dict[str, object]:
    """Parameter name -> default value; nested models become `section.field`, tuples become lists."""
    out: dict[str, object] = {}
    for name, field in model_cls.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.update(flatten_defaults(annotation, key + "."))
            continue
        default = field.get_default(call_default_factory=True)
        out[key] = list(default) if isinstance(default, tuple) else default
    return out


def unflatten(flat: dict[str, object]) -> dict:
    """`section.field` parameter names back to nested mappings, as the models read them."""
    nested: dict = {}
    for key, value in flat.items():
        *sections, leaf = key.split(".")
        node = nested
        for s in sections:
            node = node.setdefault(s, {})
        node[leaf] = value
    return nested
