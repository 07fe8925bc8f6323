"""Raw topics into an MCAP file: serialized CDR as received, with `ros2msg` schemas so standard MCAP tools decode it.

A killed process leaves the file without its summary section; MCAP readers still recover the complete chunks.
"""
from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile

from robot_rl.ros import contract

PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
              "int64", "uint64", "string", "wstring"}
# As deep as a dataset reader's history: with the contract's depth 10 a lockstep burst overwrote samples before the
# executor took them (a bag held 20 of an episode's 42 executed actions).
READER_DEPTH = 200


def msg_definition(msg_type: type) -> str:
    """The `ros2msg` schema text of a message type: its .msg file, then every nested type's, each after a line of
    80 '=' and 'MSG: pkg/Type' (the convention of rosbag2's MCAP storage)."""
    roots = [r for r in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if r] + [sys.prefix]

    def source(full: str) -> str:
        pkg, name = full.split("/")
        for root in roots:
            path = Path(root, "share", pkg, "msg", f"{name}.msg")
            if path.is_file():
                return path.read_text()
        raise FileNotFoundError(f"{pkg}/msg/{name}.msg not found under {roots}")

    def nested(full: str, text: str) -> list[str]:
        out = []
        for line in text.splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) < 2 or "=" in words[1]:
                continue   # blank, comment or constant
            base = re.sub(r"(\[.*\]|<=\d+)$", "", words[0])
            base = re.sub(r"<=\d+$", "", base)
            if base not in PRIMITIVES:
                out.append(base if "/" in base else f"{full.split('/')[0]}/{base}")
        return out

    main = f"{msg_type.__module__.split('.')[0]}/{msg_type.__name__}"
    seen, order, todo = {main}, [], nested(main, source(main))
    while todo:
        dep = todo.pop(0).replace("/msg/", "/")
        if dep not in seen:
            seen.add(dep)
            order.append(dep)
            todo += nested(dep, source(dep))
    parts = [source(main)] + [f"{'=' * 80}\nMSG: {dep}\n{source(dep)}" for dep in order]
    return "\n".join(parts)


class McapBag:
    """Serialized messages as received, one channel per topic (CDR), zstd-compressed chunks."""

    def __init__(self, path: Path, on_error):
        from mcap.writer import CompressionType, Writer

        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("wb")
        self.writer = Writer(self.file, compression=CompressionType.ZSTD)
        self.writer.start(profile="ros2", library="robot_rl recorder")
        self.channels: dict[str, int] = {}
        self.received: set[str] = set()  # topics with at least one message written
        self.lock = threading.Lock()
        self.error: OSError | None = None   # after a failed write the bag stops (MCAP readers recover the chunks before)
        self.on_error = on_error

    def add_topic(self, topic: str, msg_type: type) -> None:
        name = f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"
        schema = self.writer.register_schema(name, "ros2msg", msg_definition(msg_type).encode())
        self.channels[topic] = self.writer.register_channel(topic, "cdr", schema)

    def write(self, topic: str, data: bytes) -> None:
        now = time.time_ns()
        with self.lock:
            if self.error is not None:
                return
            try:
                self.writer.add_message(self.channels[topic], log_time=now, data=data, publish_time=now)
                self.received.add(topic)
            except OSError as err:  # a full disk: the bag stops, the dataset and the node go on
                self.error = err
                self.on_error(err)

    def close(self) -> None:
        with self.lock:
            try:
                if self.error is None:
                    self.writer.finish()
            finally:
                self.file.close()


def recorded_topics(cameras: list[str]) -> list[contract.Topic]:
    """Every contract topic a recorded graph may carry."""
    topics = [contract.JOINT_STATES, contract.EE_POSE, contract.ACTION_CHUNK, contract.EXECUTED_ACTION,
              contract.REWARD, contract.EPISODE_STATUS, contract.ARM_STATUS, contract.TELEOP_ACTIVE]
    for cam in cameras:
        topics += [contract.camera_image(cam), contract.camera_info(cam), contract.camera_depth(cam)]
    return topics


def record(node: Node, path: Path, topics: list[contract.Topic]) -> McapBag:
    """A bag at `path` fed by raw subscriptions (no deserialization) of `node` to `topics`, under their resolved
    names; a failed write is logged as an error and stops the bag only."""
    bag = McapBag(path, lambda err: node.get_logger().error(f"bag {path} stopped: {err}"))
    for topic in topics:
        name = node.resolve_topic_name(topic.name)
        bag.add_topic(name, topic.msg_type)
        qos = QoSProfile(depth=max(topic.qos.depth, READER_DEPTH), reliability=topic.qos.reliability,
                         durability=topic.qos.durability, history=topic.qos.history)
        contract.subscribe(node, topic, lambda data, n=name: bag.write(n, data), qos, raw=True)
    return bag
