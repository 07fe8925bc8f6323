"""Two hosts on one Linux machine, for tests and benches of the learner on another host.

Each host is a network namespace with an address on one veth link and a /dev/shm of its own (so DDS cannot take its
shared-memory shortcut: every byte crosses the link); DDS discovery between them goes through static peers, as a
user sets it up between a robot PC and a GPU host (docs/architecture.md, "Learner on another host"):

    ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST  ROS_STATIC_PEERS=<the other host's address>

Creating namespaces needs root (CAP_NET_ADMIN); `unavailable()` says why they cannot be made, for a skip reason.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from collections.abc import Iterator, Mapping

PRIVATE_SHM = 'mount -t tmpfs -o size=512m tmpfs /dev/shm && exec "$@"'  # ip netns exec gives a mount namespace


@dataclass(frozen=True)
class Host:
    netns: str
    address: str
    peer: str  # the other host's address

    def command(self, argv: list[str]) -> list[str]:
        """`argv` as run on this host: in its network namespace, with its own /dev/shm."""
        return ["ip", "netns", "exec", self.netns, "sh", "-c", PRIVATE_SHM, "sh", *argv]

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` with DDS discovery limited to this host and its one static peer (not the whole subnet)."""
        return {**base, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_STATIC_PEERS": self.peer}


def unavailable() -> str | None:
    """Why two network namespaces cannot be created here (None: they can)."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CAP_NET_ADMIN)"
    probe = f"rr_probe_{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextmanager
def two_hosts() -> Iterator[tuple[Host, Host]]:
    """(robot PC, learner host) joined by a veth pair on a /24 of their own; both removed on leaving the block."""
    tag, subnet = f"{os.getpid() % 10000}_{random.randint(0, 999)}", f"10.213.{random.randint(1, 254)}"
    robot, learner = Host(f"rr_robot_{tag}", f"{subnet}.1", f"{subnet}.2"), Host(f"rr_learner_{tag}", f"{subnet}.2",
                                                                                   f"{subnet}.1")
    try:
        for host in (robot, learner):
            _ip("netns", "add", host.netns)
        _ip("link", "add", "veth_r", "netns", robot.netns, "type", "veth", "peer", "name", "veth_l", "netns",
            learner.netns)
        for host, dev in ((robot, "veth_r"), (learner, "veth_l")):
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", dev)
            _ip("-n", host.netns, "link", "set", dev, "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
        yield robot, learner
    finally:
        for host in (robot, learner):
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, check=False)
