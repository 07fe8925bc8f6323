"""Weight delivery to a robot from a learner on the same host and on another host (bench/two_hosts.py: two network
namespaces on a veth link, DDS discovery by static peer), side by side in one run.

A publisher sends `policy/weights` messages (its QoS: reliable, transient local, depth 1) of the sizes a state policy
and an image policy have, each carrying its send time; a subscriber on the robot side takes the receive time. Both
ends share one clock (one machine), so the difference is the delivery latency: serialisation, DDS, the link,
deserialisation into Python. Writes docs/results/cross_host.json and its section of docs/benchmarks.md.

    python -m bench.cross_host [--sends 15]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from bench.report import ROOT, machine_line, markdown_table, write_results, write_section

SIZES_MB = (0.2, 2.0, 8.0)  # a state policy's weights with its critic, an image policy's, a larger one
TOPIC = "/bench_robot/policy/weights"


def publish(sends: int, period_s: float) -> None:
    """One message per size and period, `sends` of each, after the subscriber has matched."""
    import rclpy
    from std_msgs.msg import UInt8MultiArray

    from robot_rl.ros import contract

    rclpy.init()
    node = rclpy.create_node("bench_learner")
    pub = node.create_publisher(UInt8MultiArray, TOPIC, contract.POLICY_WEIGHTS.qos)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    time.sleep(1.0)  # discovery settles both ways before the first send
    for size in SIZES_MB:
        payload = np.random.default_rng(0).integers(0, 256, int(size * 1e6), dtype=np.uint8)
        for _ in range(sends):
            payload[:8] = np.frombuffer(np.int64(time.time_ns()).tobytes(), np.uint8)
            pub.publish(UInt8MultiArray(data=payload.tobytes()))
            end = time.monotonic() + period_s
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()


def listen(expected: int, timeout_s: float) -> None:
    """Print the messages received (their size and latency) as one JSON line, once `expected` came, at `timeout_s`
    or at SIGINT (depth 1: a message the next one replaced before delivery is never received)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from std_msgs.msg import UInt8MultiArray

    from robot_rl.ros import contract

    rclpy.init()
    node = rclpy.create_node("bench_robot_policy")
    rows = []

    def on_weights(msg) -> None:
        received = time.time_ns()
        data = bytes(msg.data)
        rows.append({"size_mb": round(len(data) / 1e6, 1),
                     "latency_ms": (received - int(np.frombuffer(data[:8], np.int64)[0])) / 1e6})

    node.create_subscription(UInt8MultiArray, TOPIC, on_weights, contract.POLICY_WEIGHTS.qos)
    deadline = time.monotonic() + timeout_s
    try:
        while len(rows) < expected and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    print(json.dumps(rows), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def run_pair(sends: int, hosts=None) -> list[dict]:
    """Publisher and subscriber as two processes: on this host, or on `hosts` = (robot, learner)."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(np.random.randint(1, 101))}
    me = [sys.executable, "-m", "bench.cross_host"]
    expected = sends * len(SIZES_MB)
    listen_cmd, publish_cmd = me + ["listen", str(expected)], me + ["publish", str(sends)]
    listen_env = publish_env = {**env, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    if hosts is not None:
        robot, learner = hosts
        listen_cmd, publish_cmd = robot.command(listen_cmd), learner.command(publish_cmd)
        listen_env, publish_env = robot.environment(env), learner.environment(env)
    listener = subprocess.Popen(listen_cmd, env=listen_env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        subprocess.run(publish_cmd, env=publish_env, cwd=ROOT, check=True, timeout=600)
        time.sleep(2.0)  # the last message's delivery
        listener.send_signal(signal.SIGINT)
        out, _ = listener.communicate(timeout=60)
    finally:
        if listener.poll() is None:
            listener.kill()
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", choices=["publish", "listen"], help=argparse.SUPPRESS)
    parser.add_argument("count", nargs="?", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sends", type=int, default=15, help="messages per size and link")
    parser.add_argument("--period", type=float, default=0.5, help="seconds between messages")
    args = parser.parse_args(argv)
    if args.role == "publish":
        publish(args.count, args.period)
        return 0
    if args.role == "listen":
        listen(args.count, timeout_s=600)
        return 0

    from bench import two_hosts

    if (reason := two_hosts.unavailable()) is not None:
        print(f"cross_host: cannot make a second host here: {reason}", file=sys.stderr)
        return 1
    started = time.time()
    measured = {"same host": run_pair(args.sends)}
    with two_hosts.two_hosts() as hosts:
        measured["other host (veth)"] = run_pair(args.sends, hosts)
    rows, table = [], []
    for size in SIZES_MB:
        cells = [f"{size:g} MB"]
        medians = {}
        for link, received in measured.items():
            lat = np.array([r["latency_ms"] for r in received if abs(r["size_mb"] - size) < 0.05])
            medians[link] = np.median(lat) if len(lat) else np.nan
            cells += [f"{len(lat)}/{args.sends}", f"{np.median(lat):.1f}" if len(lat) else "–",
                      f"{np.percentile(lat, 95):.1f}" if len(lat) else "–"]
            rows += [{"method": link, "seed": 0, "metric": f"{m}_{size:g}MB", "value": float(v)}
                     for m, v in (("received_fraction", len(lat) / args.sends),
                                  ("median_latency_ms", medians[link]),
                                  ("p95_latency_ms", np.percentile(lat, 95) if len(lat) else np.nan))]
        cells.append(f"{medians['other host (veth)'] / medians['same host']:.2f}")
        table.append(cells)
    write_results("cross_host", rows)
    header = ["weights message", "same host: received", "median ms", "p95 ms", "other host: received", "median ms",
              "p95 ms", "median ratio other/same"]
    write_section("cross_host", f"""## Weight delivery: learner on the same host vs on another host

`python -m bench.cross_host --sends {args.sends}` ({(time.time() - started) / 60:.1f} min). {machine_line()}

A `policy/weights` message (reliable, transient local, depth 1) every {args.period} s, {args.sends} per size, from a
learner process to a robot-side subscriber, both in Python (rclpy): on one host (loopback, Fast DDS shared memory),
and across a veth link between two network namespaces with a /dev/shm each and discovery by static peer
(`ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`, `ROS_STATIC_PEERS`; bench/two_hosts.py), as the learner on a GPU host
reaches the robot PC (`test/graph/test_cross_host.py` runs the whole graph that way). Latency = receive time − send
time on the one clock of this machine, from serialisation to the bytes in Python. The veth link has no bandwidth
limit: a real 1 GbE link adds about 8 ms per MB.

{markdown_table(header, table)}

Numbers: [docs/results/cross_host.json](results/cross_host.json).""")
    print(markdown_table(header, table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
