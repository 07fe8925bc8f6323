"""Fault matrix #9: the disk fills up while the recorder writes a live sim graph (bridge, scripted policy, sim reward,
episode manager, recorder with its MCAP bag). The episode being written fails and is reported as such; the episodes
saved before it stay readable; the recorder keeps running and, once space is back, saves the next episode.
(#10, a recorder killed mid-episode, is test_recorder.py::test_killed_recorder_keeps_earlier_episodes_and_discard_drops_one.)

The disk: a 32 MB tmpfs when this process may mount one (root, as in CI here), filled with a file until ENOSPC;
otherwise RLIMIT_FSIZE 0 on the recorder process, so its writes fail with EFBIG (Python ignores SIGXFSZ)."""
from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader
from std_msgs.msg import String

from fault_harness import sockets_besides_dds, wait_graph
from robot_rl import bringup
from robot_rl.data.lerobot import LeRobotWriter
from robot_rl.core.types import EE_SPACE_NAMES
from robot_rl.core.state import STATE_NAMES
from robot_rl.ros import contract
from robot_rl.ros.bag import McapBag, reindex
from dataset_checks import FPS, check_dataset

pytestmark = pytest.mark.graph


class FillableDisk:
    """A directory whose free space the test takes away and gives back."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "disk"
        self.root.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(self.root)],
                                 capture_output=True).returncode == 0
        self.kind = "tmpfs" if mounted else "rlimit"
        self.filler = tmp_path / "disk" / "filler"

    def fill(self, pid: int) -> None:
        if self.kind == "rlimit":
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
            return
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT)
        try:
            for block in (1 << 20, 4096, 1):  # until not one byte more fits
                try:
                    while os.write(fd, b"\0" * block):
                        pass
                except OSError as err:
                    assert err.errno == errno.ENOSPC, err
        finally:
            os.close(fd)

    def free(self, pid: int) -> None:
        if self.kind == "rlimit":
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        else:
            self.filler.unlink()

    def close(self) -> None:
        if self.kind == "tmpfs":
            subprocess.run(["umount", "-l", str(self.root)], check=False)


@pytest.fixture
def disk(tmp_path):
    disk = FillableDisk(tmp_path)
    yield disk
    disk.close()


def test_disk_full_fails_the_current_episode_only(tmp_path, disk):
    root = disk.root / "ds"
    graph = tmp_path / "record.yaml"
    graph.write_text("name: disk_full\nparams_files: [config/sim.yaml]\nexit_when: recorder\nnodes:\n"
                     "  - {executable: mujoco_bridge}\n  - {executable: policy}\n  - {executable: reward}\n"
                     "  - {executable: episode_manager}\n  - {executable: recorder}\n")
    proc = bringup.start_graph(graph, "disk_full", [
        "mujoco_bridge.camera_names=[front]", "mujoco_bridge.camera_width=48", "mujoco_bridge.camera_height=48",
        "episode_manager.num_episodes=0", "episode_manager.autostart=false", "episode_manager.max_steps=20",
        f"recorder.root={root}", "recorder.cameras=[front]", "recorder.image_width=48", "recorder.image_height=48",
        "recorder.num_episodes=0", "recorder.start_episodes=true", "recorder.bag=true"])
    recorder = proc.procs["recorder"].pid
    info = root / "meta" / "info.json"

    def saved() -> int:
        return json.loads(info.read_text())["total_episodes"] if info.exists() else 0

    def lines(text: str) -> list[str]:
        return [line for line in proc.logs["recorder"] if text in line]

    try:
        wait_graph(proc, lambda: saved() >= 1, 120, "a first saved episode")
        domain = int(os.environ["ROS_DOMAIN_ID"])
        for name, p in proc.procs.items():  # the recorder (and the rest) open no socket besides DDS
            assert sockets_besides_dds(p.pid, domain) == [], name
        disk.fill(recorder)
        before = saved()
        wait_graph(proc, lambda: lines("FAILED, not saved"), 60, "an episode reported as failed")
        assert saved() == before
        disk.free(recorder)
        wait_graph(proc, lambda: saved() > before, 60, "an episode saved once the disk has space again")
        assert proc.procs["recorder"].poll() is None, "the recorder died"
    finally:
        proc.stop()
    failed = lines("FAILED, not saved")
    print(f"\ndisk full ({disk.kind}): {len(failed)} episode(s) failed: {failed[0].split(']: ')[-1]}; "
          f"{saved()} saved episodes readable")
    # where the full disk bites first: a write (ENOSPC / EFBIG), the video encoder (frames silently lost, caught by
    # the frame count check) or opening the next video file
    reasons = ("No space left on device", "File too large", "encoder wrote", "could not open a mp4v video writer")
    assert any(reason in failed[0] for reason in reasons), failed
    reader = check_dataset(root)
    assert reader.num_episodes == len(lines("-> dataset episode")) == saved() >= 2
    # a writer opening the root now appends after the saved episodes; nothing of the failed ones is left
    writer = LeRobotWriter(root, FPS, STATE_NAMES, EE_SPACE_NAMES, ["front"], (48, 48, 3), robot_type="panda")
    assert writer.num_episodes == reader.num_episodes
    assert not list(root.rglob("*.partial.mp4")) and not list(root.rglob("*.tmp"))
    writer.finalize()


def test_bag_on_a_full_disk_stops_and_reports_instead_of_raising(disk):
    """The MCAP bag writes 1 MB chunks, too rarely to hit the full disk in the graph test: checked here directly.
    A write error in a subscription callback would otherwise take the recorder node down. The chunks written before
    the disk filled up come back with `reindex`."""
    errors = []
    bag = McapBag(disk.root / "bags" / "full", [("/t", String, contract.RELIABLE_10)], errors.append)
    for _ in range(300):  # 1.2 MB before the disk fills: one complete chunk
        bag.write("/t", bytes(4096))
    accepted = 300  # messages written before the error
    disk.fill(os.getpid())
    try:
        for _ in range(2000):  # 8 MB of messages: several chunks
            bag.write("/t", bytes(4096))
            accepted += not errors
    finally:
        disk.free(os.getpid())
    bag.close()
    assert len(errors) == 1 and errors[0].errno in (errno.ENOSPC, errno.EFBIG), errors
    kept = reindex(bag.path)
    # the chunk completed before the disk filled, at most up to the message whose chunk hit the full disk (closing
    # the file writes what its buffer held), nothing of the messages dropped after the error
    assert 200 <= kept <= accepted + 1 < 2300
    with Reader(bag.path) as reader:
        assert reader.message_count == sum(1 for _ in reader.messages()) == kept
