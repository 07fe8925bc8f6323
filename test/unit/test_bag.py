"""The recorder's bag (robot_rl.ros.bag) is a rosbag2 bag: rosbags opens it as one (metadata.yaml version 9, the QoS
on every channel, one schema per type) and every message deserializes with rclpy; a writer killed with SIGKILL loses
at most its last chunk once `reindex` has rebuilt the file."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mcap.exceptions import EndOfFile
from mcap.reader import make_reader
from mcap.records import Message
from mcap.stream_reader import StreamReader
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.enums import StoragePlugin
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from robot_rl.ros import contract
from robot_rl.ros.bag import McapBag, finished, msg_definition, reindex, type_hash, type_name

REPO = Path(__file__).resolve().parents[2]
# as the ROS graph reports a publisher's QoS: history and depth are not part of discovery
OFFERED_LATCHED = QoSProfile(depth=0, history=HistoryPolicy.UNKNOWN, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
SUBSCRIBED = [("/status", String, contract.RELIABLE_10), ("/joints", JointState, contract.RELIABLE_10),
              ("/joints_cmd", JointState, contract.RELIABLE_10), ("/image", Image, contract.SENSOR),
              ("/silent", String, contract.RELIABLE_10)]
TYPES = {type_name(msg_type): msg_type for _, msg_type, _ in SUBSCRIBED}


def sample_messages() -> dict[str, list]:
    image = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
    return {"/status": [String(data=f'{{"n": {i}}}') for i in range(3)],
            "/joints": [JointState(name=["j1", "j2"], position=[float(i), -float(i)]) for i in range(5)],
            "/joints_cmd": [JointState(position=[0.5])],
            "/image": [image, image]}


def write_sample_bag(path: Path) -> dict[str, list]:
    messages = sample_messages()
    bag = McapBag(path, SUBSCRIBED, on_error=pytest.fail,
                  offered_qos=lambda name: [OFFERED_LATCHED] if name == "/status" else [])
    for i in range(5):   # interleaved, as topics arrive
        for topic, msgs in messages.items():
            if i < len(msgs):
                bag.write(topic, serialize_message(msgs[i]))
    bag.close()
    return messages


def test_bag_is_a_rosbag2_bag_that_rosbags_reads_and_rclpy_deserializes(tmp_path: Path):
    path = tmp_path / "bags" / "run"
    written = write_sample_bag(path)
    assert sorted(p.name for p in path.iterdir()) == ["metadata.yaml", "run_0.mcap"]
    with Reader(path) as reader:
        assert reader.message_count == sum(len(m) for m in written.values())
        conns = {c.topic: c for c in reader.connections}
        assert {t: (c.msgtype, c.msgcount) for t, c in conns.items()} == {
            t: (type_name(m), len(written.get(t, []))) for t, m, _ in SUBSCRIBED}
        read: dict[str, list] = {}
        for conn, _, raw in reader.messages():
            read.setdefault(conn.topic, []).append(deserialize_message(raw, TYPES[conn.msgtype]))
    assert read == written
    # QoS: the publishers' offer where the graph knew it (a latched topic stays latched on replay), else the
    # subscription's own, on every topic, with or without messages
    (status_qos,) = conns["/status"].ext.offered_qos_profiles
    assert status_qos.durability == QosDurability.TRANSIENT_LOCAL and status_qos.depth == 0
    (image_qos,) = conns["/image"].ext.offered_qos_profiles
    assert image_qos.reliability == QosReliability.BEST_EFFORT and image_qos.depth == contract.SENSOR.depth
    assert all(len(c.ext.offered_qos_profiles) == 1 for c in conns.values())
    # the MCAP ros2 profile: offered_qos_profiles on every channel, one schema per message type
    with (path / "run_0.mcap").open("rb") as f:
        summary = make_reader(f).get_summary()
    assert sorted(s.name for s in summary.schemas.values()) == sorted(
        {"std_msgs/msg/String", "sensor_msgs/msg/JointState", "sensor_msgs/msg/Image"})
    assert all(s.encoding == "ros2msg" for s in summary.schemas.values())
    assert {c.topic for c in summary.channels.values()} == {t for t, _, _ in SUBSCRIBED}
    for channel in summary.channels.values():
        qos = yaml.safe_load(channel.metadata["offered_qos_profiles"])
        assert channel.message_encoding == "cdr" and qos[0]["reliability"] in ("reliable", "best_effort")
        assert channel.metadata["topic_type_hash"].startswith("RIHS01_")


def test_message_definitions_parse_with_rosbags_own_typesystem(tmp_path: Path):
    """The `ros2msg` schemas are complete: rosbags builds its types from them alone and decodes every message."""
    path = tmp_path / "run"
    written = write_sample_bag(path)
    with AnyReader([path]) as reader:
        images = [reader.deserialize(raw, conn.msgtype) for conn, _, raw in reader.messages()
                  if conn.topic == "/image"]
    assert [bytes(img.data) for img in images] == [bytes(m.data) for m in written["/image"]]


def structure(value):
    """The keys of nested mappings (first element of lists), without the values."""
    if isinstance(value, dict):
        return {k: structure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [structure(value[0])] if value else []
    return type(value).__name__


def test_metadata_has_the_keys_rosbags_writes_for_version_9(tmp_path: Path):
    ours = tmp_path / "ours"
    write_sample_bag(ours)
    theirs = tmp_path / "theirs"
    with Writer(theirs, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/status", "std_msgs/msg/String", msgdef=msg_definition(String),
                                     rihs01=type_hash(String))
        writer.write(conn, 1, serialize_message(String(data="x")))
    mine = yaml.safe_load((ours / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    reference = yaml.safe_load((theirs / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    ref_structure, my_structure = structure(reference), structure(mine)
    # rosbags writes an empty QoS list for a connection added without one
    ref_structure["topics_with_message_count"][0]["topic_metadata"].pop("offered_qos_profiles")
    my_structure["topics_with_message_count"][0]["topic_metadata"].pop("offered_qos_profiles")
    assert my_structure == ref_structure
    assert mine["version"] == 9 and mine["storage_identifier"] == "mcap"
    assert mine["relative_file_paths"] == [f["path"] for f in mine["files"]] == ["ours_0.mcap"]


def test_metadata_is_written_at_open_and_refreshed_with_each_flush(tmp_path: Path):
    path = tmp_path / "run"
    bag = McapBag(path, SUBSCRIBED, on_error=pytest.fail, flush_s=0.05)
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["message_count"] == 0 and len(info["topics_with_message_count"]) == len(SUBSCRIBED)
    bag.write("/status", serialize_message(String(data="a")))
    time.sleep(0.1)
    bag.write("/status", serialize_message(String(data="b")))   # past flush_s: the chunk is written out
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["message_count"] == 2
    on_disk = []
    with (path / "run_0.mcap").open("rb") as f:
        with pytest.raises(EndOfFile):   # not closed yet: no summary, no footer
            for record in StreamReader(f).records:
                on_disk += [record] if isinstance(record, Message) else []
    assert [deserialize_message(m.data, String).data for m in on_disk] == ["a", "b"]
    bag.close()


KILLED_WRITER = """
import sys
from pathlib import Path
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState
from robot_rl.ros import contract
from robot_rl.ros.bag import McapBag

bag = McapBag(Path(sys.argv[1]), [("/joints", JointState, contract.RELIABLE_10)], on_error=print, flush_s=0.0)
i = 0
while True:
    bag.write("/joints", serialize_message(JointState(position=[float(i)] * 7, velocity=[0.1] * 7)))
    i += 1
    print(i, flush=True)   # i messages written, the last chunk included (flush_s 0: one message a chunk)
"""


def test_a_killed_writer_loses_at_most_its_last_chunk_after_reindex(tmp_path: Path):
    path = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
    try:
        lines = [proc.stdout.readline() for _ in range(200)]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    lines += proc.stdout.read().split()
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    flushed = int(lines[-1])
    mcap_file = path / "killed_0.mcap"
    assert flushed >= 200 and not finished(mcap_file)
    done = subprocess.run([sys.executable, "-m", "robot_rl.ros.bag", "reindex", str(path)], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert finished(mcap_file)
    with Reader(path) as reader:
        positions = [deserialize_message(raw, JointState).position[0] for _, _, raw in reader.messages()]
        assert reader.message_count == len(positions)
    # every message written before the kill, in order, except at most the one chunk being written
    assert positions == [float(i) for i in range(len(positions))] and flushed <= len(positions) <= flushed + 1
    assert done.stdout.strip() == f"{path}: {len(positions)} messages"


def test_reindex_of_a_finished_bag_rebuilds_only_its_metadata(tmp_path: Path):
    path = tmp_path / "run"
    write_sample_bag(path)
    before = (path / "run_0.mcap").read_bytes()
    metadata = yaml.safe_load((path / "metadata.yaml").read_text())
    (path / "metadata.yaml").unlink()
    assert reindex(path) == metadata["rosbag2_bagfile_information"]["message_count"]
    assert (path / "run_0.mcap").read_bytes() == before
    rebuilt = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    original = metadata["rosbag2_bagfile_information"]

    def by_name(info: dict) -> list[dict]:
        return sorted(info.pop("topics_with_message_count"), key=lambda t: t["topic_metadata"]["name"])

    # every topic comes back (those without messages from the summary's channels), QoS and type hash included
    assert by_name(rebuilt) == by_name(original) and rebuilt == original


def test_bad_input_names_the_problem(tmp_path: Path):
    bag = McapBag(tmp_path / "run", SUBSCRIBED, on_error=pytest.fail)
    with pytest.raises(ValueError, match="/nope is not one of its topics"):
        bag.write("/nope", b"")
    bag.close()
    with pytest.raises(FileExistsError, match="run"):
        McapBag(tmp_path / "run", SUBSCRIBED, on_error=pytest.fail)
    with pytest.raises(ValueError, match="holds \\[\\]"):
        reindex(tmp_path)
    with pytest.raises(ValueError, match="no such directory"):
        reindex(tmp_path / "missing")
