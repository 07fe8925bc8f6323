"""Shared by the fault-matrix tests (test_fault_*.py): a graph seen from a probe over DDS, episode control, and the
check that node processes open no sockets besides the ones Fast DDS opens."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from robot_rl import bringup
from robot_rl.ros import contract, convert, records
from robot_rl.ros.probe import Probe, wait_for


def other_domain() -> int:
    """A ROS domain next to the session's, for a second graph (/clock is global: one sim graph per domain)."""
    return int(os.environ["ROS_DOMAIN_ID"]) % 100 + 1


def kill9(proc: bringup.GraphProcess, name: str) -> None:
    """SIGKILL one node (no clean-up, no DDS goodbye) and reap it."""
    os.kill(proc.procs[name].pid, signal.SIGKILL)
    proc.procs[name].wait(timeout=10)


def wait_graph(proc: bringup.GraphProcess, predicate, timeout: float, what: str):
    """wait_for, with the tail of every node's log in the failure message."""
    try:
        return wait_for(predicate, timeout, what)
    except AssertionError as err:
        logs = "\n".join(f"--- {name}\n" + "\n".join(lines[-8:]) for name, lines in proc.logs.items())
        raise AssertionError(f"{err}\n{logs}") from None


class Watch:
    """Everything the graph in namespace `ns` publishes that the fault tests judge, as it arrives."""

    def __init__(self, probe: Probe, ns: str):
        self.probe, self.ns = probe, ns.rstrip("/")
        self.status: list[records.EpisodeStatus] = []
        self.arm: list[records.ArmStatus] = []
        self.rewards: list[records.RewardRecord] = []
        self.executed = []   # ActionChunk, one point each: what the arm really commanded per tick
        self.chunks = []     # ActionChunk as published on action_chunk
        self.joints: list[tuple[float, object]] = []   # (stamp, positions)
        self.poses: list[tuple[float, tuple]] = []     # (stamp, (x, y, z))
        sub = probe.node.create_subscription
        sub(String, self.topic(contract.EPISODE_STATUS),
            lambda m: self.status.append(records.decode(m.data, records.EpisodeStatus)), contract.EPISODE_STATUS.qos)
        sub(String, self.topic(contract.ARM_STATUS),
            lambda m: self.arm.append(records.decode(m.data, records.ArmStatus)), contract.ARM_STATUS.qos)
        sub(String, self.topic(contract.REWARD),
            lambda m: self.rewards.append(records.decode(m.data, records.RewardRecord)), contract.REWARD.qos)
        sub(JointTrajectory, self.topic(contract.EXECUTED_ACTION),
            lambda m: self.executed.append(convert.msg_to_chunk(m)), contract.LOSSLESS)
        sub(JointTrajectory, self.topic(contract.ACTION_CHUNK), self._on_chunk, contract.ACTION_CHUNK.qos)
        sub(JointState, self.topic(contract.JOINT_STATES),
            lambda m: self.joints.append((convert.from_time(m.header.stamp), list(m.position))), contract.LOSSLESS)
        self.clock_now = 0.0  # the newest /clock, keep-last 1: current even when the deep streams above lag behind
        sub(contract.CLOCK.msg_type, f"{self.ns}/clock",
            lambda m: setattr(self, "clock_now", convert.from_time(m.clock)), contract.CLOCK.qos)
        sub(PoseStamped, self.topic(contract.EE_POSE),
            lambda m: self.poses.append((convert.from_time(m.header.stamp),
                                         (m.pose.position.x, m.pose.position.y, m.pose.position.z))),
            contract.LOSSLESS)

    def _on_chunk(self, msg: JointTrajectory) -> None:
        try:
            self.chunks.append(convert.msg_to_chunk(msg))
        except convert.ConversionError:  # a malformed chunk a test sent (an exception would stop the probe's spin)
            pass

    def topic(self, t: contract.Topic) -> str:
        return f"{self.ns}/{t.name}"

    def publishers(self, t: contract.Topic) -> set[bytes]:
        return {bytes(i.endpoint_gid) for i in self.probe.node.get_publishers_info_by_topic(self.topic(t))}

    def restart(self, proc: bringup.GraphProcess, name: str, publishes: contract.Topic, timeout: float = 60.0):
        """Start a killed node again and wait until its new publisher on `publishes` is discovered (the killed one
        stays in the DDS graph until its lease runs out, so the count of publishers says nothing)."""
        before = self.publishers(publishes)
        proc.restart(name)
        wait_for(lambda: self.publishers(publishes) - before, timeout, f"{name} to publish again")

    def now(self) -> float:
        """The robot clock as last seen on joint_states."""
        return self.joints[-1][0] if self.joints else 0.0

    def call(self, name: str, timeout: float = 30.0):
        return self.probe.call(Trigger, f"{self.ns}/{name}", Trigger.Request(), timeout=timeout)

    def last_status(self, episode: int | None = None, state: str | None = None):
        for s in reversed(self.status):
            if (episode is None or s.episode == episode) and (state is None or s.state == state):
                return s
        return None

    def start_episode(self, timeout: float = 60.0) -> records.EpisodeStatus:
        """episode/start, then the `running` record that follows it."""
        seen = len(self.status)
        assert self.call("episode/start").success
        return wait_for(lambda: next((s for s in self.status[seen:] if s.state == "running"), None), timeout,
                        "a new episode to run")

    def wait_end(self, episode: int, timeout: float) -> records.EpisodeStatus:
        return wait_for(lambda: self.last_status(episode, "ended"), timeout, f"episode {episode} to end")

    def pause(self) -> None:
        """episode/stop: ends a running episode and keeps the next from starting (until episode/start). An episode
        whose reset is in progress starts anyway: it is stopped by the next call."""
        def idle() -> bool:
            if self.status and self.status[-1].state in ("idle", "ended"):
                return True
            self.call("episode/stop")
            return False

        self.call("episode/stop")
        wait_for(idle, 30, "the episode manager idle", interval=0.5)

    def executed_in(self, episode: records.EpisodeStatus, source: str | None = None) -> list:
        return [c for c in self.executed if c.stamp > episode.stamp and (source is None or c.source == source)]


# ---- sockets -----------------------------------------------------------------------------------------------------
def ephemeral_ports() -> range:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def rtps_ports(domain_id: int) -> range:
    """RTPS well-known ports of a domain: PB 7400 + DG 250 x domain, 250 ports per domain."""
    base = 7400 + 250 * domain_id
    return range(base, base + 250)


FASTDDS_READER_PORTS = range(7000, 7400)  # one per process here: the reader rmw_fastrtps creates for its graph topic


def sockets_besides_dds(pid: int, domain_id: int) -> list[str]:
    """The inet sockets of process `pid` that Fast DDS (UDPv4 + SHM transports, config/fastdds.xml) does not account
    for: every TCP socket, every IPv6 socket, and UDP sockets outside the domain's RTPS ports, the per-reader ports
    and the ephemeral range (Fast DDS binds its output sockets to port 0)."""
    allowed = (rtps_ports(domain_id), FASTDDS_READER_PORTS, ephemeral_ports())
    odd = []
    for c in psutil.Process(pid).net_connections(kind="inet"):
        udp4 = c.type == 2 and c.family == 2  # SOCK_DGRAM, AF_INET
        if not udp4 or not any(c.laddr.port in r for r in allowed):
            kind = {1: "tcp", 2: "udp"}.get(int(c.type), str(c.type))
            peer = f"{c.raddr.ip}:{c.raddr.port}" if c.raddr else "-"
            odd.append(f"{kind} {c.laddr.ip}:{c.laddr.port} -> {peer} {c.status}")
    return odd


def listening_tcp(pid: int) -> list[str]:
    return [f"{c.laddr.ip}:{c.laddr.port}" for c in psutil.Process(pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN]


def wait_quiet(seconds: float) -> None:
    """Let a fault last this long (not a timing assertion: the test checks what happened meanwhile)."""
    time.sleep(seconds)
