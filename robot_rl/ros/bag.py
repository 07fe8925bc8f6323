"""Raw topics into a rosbag2 bag: a directory holding metadata.yaml (rosbag2 metadata version 9) and one MCAP file
of serialized CDR as received, one `ros2msg` schema per message type and each topic's offered QoS on its channel, so
`ros2 bag`, rosbags and MCAP tools open it.

A killed recorder leaves the MCAP file without its summary section and metadata.yaml as last refreshed (at most
FLUSH_S old); `reindex` (`python -m robot_rl.ros.bag reindex BAG_DIR`, what `ros2 bag reindex` is for rosbag2)
rewrites both from the complete chunks, losing at most the chunk the recorder was filling.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
import zstandard
from mcap.exceptions import McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from mcap.writer import CompressionType, Writer
from rclpy.node import Node
from rclpy.qos import QoSProfile

from robot_rl.ros import contract

PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
              "int64", "uint64", "string", "wstring"}
# As deep as a dataset reader's history: with the contract's depth 10 a lockstep burst overwrote samples before the
# executor took them (a bag held 20 of an episode's 42 executed actions).
READER_DEPTH = 200
# How often the chunk being filled is written out and metadata.yaml refreshed: what a killed recorder loses at most
# (or one 1 MiB chunk, when the topics fill one faster).
FLUSH_S = 1.0
LIBRARY = "robot_rl recorder"
NO_MESSAGES_START = 2**63 - 1   # starting_time of a bag without messages, as rosbag2 and rosbags write it
MCAP_MAGIC = b"\x89MCAP0\r\n"


def interface_file(full: str, suffix: str) -> Path:
    """The installed interface file of 'pkg/Name' or 'pkg/msg/Name' (.msg text, .json type description)."""
    pkg, *_, name = full.split("/")
    roots = [r for r in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if r] + [sys.prefix]
    for root in roots:
        path = Path(root, "share", pkg, "msg", f"{name}{suffix}")
        if path.is_file():
            return path
    raise FileNotFoundError(f"{pkg}/msg/{name}{suffix} not found under {roots}")


def type_name(msg_type: type) -> str:
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


def type_hash(msg_type: type) -> str:
    """The RIHS01 type description hash rosidl installed with the type (rosbag2's type_description_hash)."""
    name = type_name(msg_type)
    hashes = json.loads(interface_file(name, ".json").read_text())["type_hashes"]
    return next(h["hash_string"] for h in hashes if h["type_name"] == name)


def msg_definition(msg_type: type) -> str:
    """The `ros2msg` schema text of a message type: its .msg file, then every nested type's, each after a line of
    80 '=' and 'MSG: pkg/Type' (the convention of rosbag2's MCAP storage)."""
    def source(full: str) -> str:
        return interface_file(full, ".msg").read_text()

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


class _Dumper(yaml.SafeDumper):
    """Writes every mapping in full: PyYAML's anchors and aliases for repeated objects are valid YAML, but not what
    rosbag2 writes."""

    def ignore_aliases(self, data) -> bool:
        return True


def dump_yaml(data) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def qos_entry(qos: QoSProfile) -> dict:
    """One offered_qos_profiles entry as rosbag2 metadata version 9 writes it: policy names, rmw_time_t durations
    (infinite: sec 9223372036, nsec 854775807)."""
    def rmw_time(duration) -> dict:
        sec, nsec = divmod(duration.nanoseconds, 10**9)
        return {"sec": sec, "nsec": nsec}

    return {"history": qos.history.name.lower(), "depth": qos.depth, "reliability": qos.reliability.name.lower(),
            "durability": qos.durability.name.lower(), "deadline": rmw_time(qos.deadline),
            "lifespan": rmw_time(qos.lifespan), "liveliness": qos.liveliness.name.lower(),
            "liveliness_lease_duration": rmw_time(qos.liveliness_lease_duration),
            "avoid_ros_namespace_conventions": qos.avoid_ros_namespace_conventions}


@dataclass
class BagTopic:
    """A topic as metadata.yaml lists it."""
    name: str
    type: str          # pkg/msg/Name
    type_hash: str     # RIHS01_...
    qos: list[dict]    # offered_qos_profiles entries (qos_entry)
    count: int = 0

    def channel_metadata(self) -> dict[str, str]:
        """The MCAP channel's user data, the keys rosbag2's MCAP storage writes (the ros2 profile requires the QoS)."""
        return {"offered_qos_profiles": dump_yaml(self.qos), "topic_type_hash": self.type_hash}


def bag_metadata(file_name: str, topics: list[BagTopic], start_ns: int, end_ns: int) -> dict:
    """metadata.yaml, key for key as rosbags' rosbag2 Writer writes version 9. The MCAP chunks carry their own zstd
    compression, so the bag-level compression fields stay empty (rosbag2's storage-level compression)."""
    count = sum(t.count for t in topics)

    def span() -> dict:
        return {"starting_time": {"nanoseconds_since_epoch": start_ns if count else NO_MESSAGES_START},
                "duration": {"nanoseconds": end_ns - start_ns if count else 0}}

    return {"rosbag2_bagfile_information": {
        "version": 9, "storage_identifier": "mcap", "relative_file_paths": [file_name], **span(),
        "message_count": count,
        "topics_with_message_count": [
            {"topic_metadata": {"name": t.name, "type": t.type, "serialization_format": "cdr",
                                "offered_qos_profiles": t.qos, "type_description_hash": t.type_hash},
             "message_count": t.count} for t in topics],
        "compression_format": "", "compression_mode": "",
        "files": [{"path": file_name, **span(), "message_count": count}],
        "custom_data": None, "ros_distro": os.environ.get("ROS_DISTRO", "")}}


def write_metadata(bag: Path, metadata: dict) -> None:
    """Replaced in one rename: a reader, or a kill, never meets half a file."""
    tmp = bag / "metadata.yaml.tmp"
    tmp.write_text(dump_yaml(metadata))
    os.replace(tmp, bag / "metadata.yaml")


class McapBag:
    """A rosbag2 bag being written: messages as received (receive time as log and publish time), zstd chunks.

    `topics`: (resolved name, message type, the QoS it is subscribed with). A topic's channel opens at its first
    message with the QoS its publishers offer (`offered_qos(name)`, from the ROS graph), or else the subscribed one;
    topics without messages get the subscribed one at close. Every `flush_s` the chunk being filled is written and
    metadata.yaml refreshed.
    """

    def __init__(self, path: Path, topics: list[tuple[str, type, QoSProfile]], on_error: Callable[[OSError], None],
                 offered_qos: Callable[[str], list[QoSProfile]] = lambda name: [], flush_s: float = FLUSH_S):
        path.mkdir(parents=True)   # a bag is never written over (FileExistsError names it)
        self.path = path
        self.file_name = f"{path.name}_0.mcap"   # rosbag2's name for a bag's first file
        self.file = (path / self.file_name).open("xb")
        self.writer = Writer(self.file, compression=CompressionType.ZSTD)
        self.writer.start(profile="ros2", library=LIBRARY)
        self.topics = {name: BagTopic(name, type_name(msg_type), type_hash(msg_type), [qos_entry(qos)])
                       for name, msg_type, qos in topics}
        self.msg_types = {name: msg_type for name, msg_type, _ in topics}
        self.schemas: dict[str, int] = {}    # one per message type
        self.channels: dict[str, int] = {}
        self.start_ns, self.end_ns = NO_MESSAGES_START, 0
        self.offered_qos = offered_qos
        self.flush_ns = int(flush_s * 1e9)
        self.flushed_ns = time.time_ns()
        self.lock = threading.Lock()
        self.error: OSError | None = None   # after a failed write the bag stops (reindex recovers the chunks before)
        self.on_error = on_error
        write_metadata(path, self.metadata())

    @property
    def received(self) -> set[str]:
        """Topics with at least one message written."""
        return {name for name, topic in self.topics.items() if topic.count}

    def metadata(self) -> dict:
        return bag_metadata(self.file_name, list(self.topics.values()), self.start_ns, self.end_ns)

    def open_channel(self, name: str, offered: list[QoSProfile]) -> int:
        topic, msg_type = self.topics[name], self.msg_types[name]
        if offered:
            topic.qos = [qos_entry(qos) for qos in offered]
        if topic.type not in self.schemas:
            self.schemas[topic.type] = self.writer.register_schema(topic.type, "ros2msg",
                                                                   msg_definition(msg_type).encode())
        self.channels[name] = self.writer.register_channel(name, "cdr", self.schemas[topic.type],
                                                           topic.channel_metadata())
        return self.channels[name]

    def write(self, name: str, data: bytes) -> None:
        if name not in self.topics:
            raise ValueError(f"bag {self.path}: {name} is not one of its topics {sorted(self.topics)}")
        now = time.time_ns()
        with self.lock:
            if self.error is not None:
                return
            try:
                channel = self.channels.get(name) or self.open_channel(name, self.offered_qos(name))
                self.writer.add_message(channel, log_time=now, data=data, publish_time=now)
                self.file.flush()   # a chunk the writer just finished goes to the OS now, not with the next one
                self.topics[name].count += 1
                self.start_ns, self.end_ns = min(self.start_ns, now), max(self.end_ns, now)
                if now - self.flushed_ns >= self.flush_ns:
                    self.writer.flush()
                    write_metadata(self.path, self.metadata())
                    self.flushed_ns = now
            except OSError as err:  # a full disk: the bag stops, the dataset and the node go on
                self.error = err
                self.on_error(err)

    def close(self) -> None:
        """Finishes the MCAP file (summary, rosbag2's metadata record) and metadata.yaml; after a failed write the
        file is left as it is, for `reindex`."""
        with self.lock:
            try:
                if self.error is None:
                    for name in [name for name in self.topics if name not in self.channels]:
                        self.open_channel(name, [])
                    info = self.metadata()
                    self.writer.add_metadata("rosbag2", {
                        "serialized_metadata": dump_yaml(info["rosbag2_bagfile_information"])})
                    self.writer.finish()
                    write_metadata(self.path, info)
            except OSError as err:
                self.error = err
                self.on_error(err)
            finally:
                self.file.close()


def finished(path: Path) -> bool:
    """The MCAP file ends with its closing magic (a recorder that closed it wrote the footer before)."""
    with path.open("rb") as file:
        if file.seek(0, os.SEEK_END) < 2 * len(MCAP_MAGIC):
            return False
        file.seek(-len(MCAP_MAGIC), os.SEEK_END)
        return file.read() == MCAP_MAGIC


def scan(path: Path, copy: Writer | None) -> tuple[list[BagTopic], int, int]:
    """The topics (with message counts) and log time span of an MCAP file's complete records, each also written to
    `copy` when given; in a file cut short the reading stops at the cut-off record."""
    schemas: dict[int, Schema] = {}
    topics: dict[int, BagTopic] = {}
    copied: dict[tuple[str, int], int] = {}   # ("schema" | "channel", id in path) -> id in copy
    start, end = NO_MESSAGES_START, 0
    with path.open("rb") as src:
        try:
            for record in StreamReader(src, validate_crcs=True).records:
                if isinstance(record, Schema) and record.id not in schemas:   # the summary repeats them
                    schemas[record.id] = record
                    if copy is not None:
                        copied["schema", record.id] = copy.register_schema(record.name, record.encoding, record.data)
                elif isinstance(record, Channel) and record.id not in topics:
                    qos = yaml.safe_load(record.metadata.get("offered_qos_profiles", "")) or []
                    topics[record.id] = BagTopic(record.topic, schemas[record.schema_id].name,
                                                 record.metadata.get("topic_type_hash", ""), qos)
                    if copy is not None:
                        copied["channel", record.id] = copy.register_channel(
                            record.topic, record.message_encoding, copied["schema", record.schema_id],
                            record.metadata)
                elif isinstance(record, Message):
                    topics[record.channel_id].count += 1
                    start, end = min(start, record.log_time), max(end, record.log_time)
                    if copy is not None:
                        copy.add_message(copied["channel", record.channel_id], record.log_time, record.data,
                                         record.publish_time, record.sequence)
        except (McapError, ValueError, zstandard.ZstdError):
            if copy is None:
                raise   # a finished file that does not read is damaged, not cut short: not ours to trim
    return list(topics.values()), start, end


def reindex(bag: Path) -> int:
    """What `ros2 bag reindex` is for rosbag2, for a bag whose recorder was killed or hit a full disk: its MCAP file
    is rewritten with the messages of its complete chunks and a summary (the chunk being filled is lost), and
    metadata.yaml rebuilt from the file. A finished bag keeps its file and only gets metadata.yaml rebuilt. Returns
    the number of messages in the bag."""
    files = sorted(bag.glob("*.mcap")) if bag.is_dir() else []
    if len(files) != 1:
        raise ValueError(f"{bag} is not a one-file rosbag2 MCAP bag directory "
                         f"({'it holds ' + str([f.name for f in files]) if bag.is_dir() else 'no such directory'})")
    path = files[0]
    if finished(path):
        topics, start, end = scan(path, None)
        info = bag_metadata(path.name, topics, start, end)
    else:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as out:
            copy = Writer(out, compression=CompressionType.ZSTD)
            copy.start(profile="ros2", library=LIBRARY)
            topics, start, end = scan(path, copy)
            info = bag_metadata(path.name, topics, start, end)
            copy.add_metadata("rosbag2", {"serialized_metadata": dump_yaml(info["rosbag2_bagfile_information"])})
            copy.finish()
        os.replace(tmp, path)
    write_metadata(bag, info)
    return info["rosbag2_bagfile_information"]["message_count"]


def recorded_topics(cameras: list[str]) -> list[contract.Topic]:
    """Every contract topic a recorded graph may carry."""
    topics = [contract.JOINT_STATES, contract.EE_POSE, contract.ACTION_CHUNK, contract.EXECUTED_ACTION,
              contract.REWARD, contract.EPISODE_STATUS, contract.ARM_STATUS, contract.TELEOP_ACTIVE]
    for cam in cameras:
        topics += [contract.camera_image(cam), contract.camera_info(cam), contract.camera_depth(cam)]
    return topics


def record(node: Node, path: Path, topics: list[contract.Topic]) -> McapBag:
    """A bag at `path` (a new directory) fed by raw subscriptions (no deserialization) of `node` to `topics`, under
    their resolved names; a failed write is logged as an error and stops the bag only."""
    subscribed = [(node.resolve_topic_name(topic.name), topic,
                   QoSProfile(depth=max(topic.qos.depth, READER_DEPTH), reliability=topic.qos.reliability,
                              durability=topic.qos.durability, history=topic.qos.history)) for topic in topics]
    types = {name: type_name(topic.msg_type) for name, topic, _ in subscribed}

    def offered_qos(name: str) -> list[QoSProfile]:
        """What the topic's publishers offer, as the ROS graph reports it (rosbag2 replays latched topics from it)."""
        return [info.qos_profile for info in node.get_publishers_info_by_topic(name) if info.topic_type == types[name]]

    bag = McapBag(path, [(name, topic.msg_type, qos) for name, topic, qos in subscribed],
                  lambda err: node.get_logger().error(f"bag {path} stopped: {err}"), offered_qos)
    for name, topic, qos in subscribed:
        contract.subscribe(node, topic, lambda data, n=name: bag.write(n, data), qos, raw=True)
    return bag


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m robot_rl.ros.bag", description="the recorder's rosbag2 bags")
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild = commands.add_parser("reindex", help="rewrite the MCAP summary and metadata.yaml of bags whose "
                                                  "recorder was killed (as ros2 bag reindex)")
    rebuild.add_argument("bags", nargs="+", type=Path, help="bag directories (<root>/bags/<date-time>)")
    args = parser.parse_args(argv)
    for bag in args.bags:
        try:
            print(f"{bag}: {reindex(bag)} messages")
        except ValueError as err:
            parser.error(str(err))


if __name__ == "__main__":
    main()
