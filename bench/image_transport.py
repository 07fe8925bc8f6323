"""Camera image transport between two processes: latency and drops, with and without the project's Fast DDS SHM profile.

A publisher process publishes N cameras (`cameras/<name>/image_raw`, sensor_msgs/Image rgb8) at a fixed rate, stamped
with wall time and carrying `<camera>:<seq>` in `header.frame_id`; a subscriber process records, per frame,
latency = receive wall time − stamp and which sequence numbers arrived. Four configurations:
{SHM profile (`FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds.xml`), Fast DDS default transports} × {best effort
keep-last 5 (`qos_profile_sensor_data`, the project's image contract), reliable keep-last 5}.

The publisher waits until every camera topic has matched the subscriber, publishes a warm-up second that is not
counted, then measures for `--seconds`.

    python -m bench.image_transport [--seconds 10] [--width 640 --height 480 --rate 30 --cameras 2]
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROFILE = ROOT / "config" / "fastdds.xml"
CAMERA_NAMES = ["front", "wrist"]
WARMUP_S = 1.0
DISCOVERY_TIMEOUT_S = 20.0
CONFIGS = [  # (label, use SHM profile, reliable)
    ("SHM profile", True, False),
    ("SHM profile", True, True),
    ("default transports", False, False),
    ("default transports", False, True),
]


def camera_names(n: int) -> list[str]:
    return CAMERA_NAMES[:n] + [f"cam{i}" for i in range(len(CAMERA_NAMES), n)]


def topic(cam: str) -> str:
    return f"cameras/{cam}/image_raw"


# ----------------------------------------------------------------------------------------------- child processes

def _qos(reliable: bool):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if not reliable:
        return qos_profile_sensor_data  # best effort, keep last 5, volatile
    q = QoSProfile(depth=5)
    q.reliability = ReliabilityPolicy.RELIABLE
    return q


def _write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def run_publisher(args) -> int:
    import numpy as np
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from sensor_msgs.msg import Image

    cams = camera_names(args.cameras)
    rclpy.init()
    node = rclpy.create_node("bench_image_pub")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        pubs = {c: node.create_publisher(Image, topic(c), _qos(args.reliable)) for c in cams}
        rng = np.random.default_rng(0)
        frames = {c: [rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8) for _ in range(4)] for c in cams}

        deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
        while not all(p.get_subscription_count() >= 1 for p in pubs.values()):
            if time.monotonic() > deadline:
                print("ERROR: subscriber never matched", flush=True)
                return 2
            executor.spin_once(timeout_sec=0.02)
        print("matched", flush=True)

        period = 1.0 / args.rate
        t0 = time.monotonic()
        measure_from, stop_at = t0 + WARMUP_S, t0 + WARMUP_S + args.seconds
        seq = {c: 0 for c in cams}
        first_measured = {c: None for c in cams}
        publish_ms: list[float] = []
        tick, announced = 0, False
        while True:
            target = t0 + tick * period
            now = time.monotonic()
            if target >= stop_at:
                break
            if target > now:
                time.sleep(target - now)
            measuring = target >= measure_from
            if measuring and not announced:
                print("measuring", flush=True)
                announced = True
            for c in cams:
                msg = Image()
                msg.height, msg.width, msg.encoding = args.height, args.width, "rgb8"
                msg.step = args.width * 3
                msg.header.frame_id = f"{c}:{seq[c]}"
                t_ns = time.time_ns()
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 1_000_000_000)
                start = time.perf_counter()
                msg.data = frames[c][seq[c] % 4].tobytes()
                pubs[c].publish(msg)
                if measuring:
                    publish_ms.append((time.perf_counter() - start) * 1e3)
                    if first_measured[c] is None:
                        first_measured[c] = seq[c]
                seq[c] += 1
            tick += 1
        behind_s = time.monotonic() - stop_at
        acked = None
        if args.reliable:  # give the last frames' retransmissions a chance before the writer goes away
            acked = all([p.wait_for_all_acked(rclpy.duration.Duration(seconds=2.0)) for p in pubs.values()])
        else:
            time.sleep(0.3)
        _write_json(args.result, {
            "sent": {c: [first_measured[c], seq[c] - 1] for c in cams},  # inclusive range of measured sequence numbers
            "warmup_sent": {c: first_measured[c] or 0 for c in cams},
            "publish_ms": publish_ms,
            "behind_s": behind_s,
            "acked": acked,
        })
        print("done", flush=True)
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    finally:
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def run_subscriber(args) -> int:
    import numpy as np
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from sensor_msgs.msg import Image

    cams = camera_names(args.cameras)
    expected = args.width * args.height * 3
    got = {c: {"seq": [], "lat_ms": []} for c in cams}
    bad = {"size": 0, "frame_id": 0}

    def make_cb(cam):
        def cb(msg):
            recv_ns = time.time_ns()
            lat_ms = (recv_ns - (msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)) / 1e6
            img = np.frombuffer(msg.data, dtype=np.uint8)
            if img.size != expected:
                bad["size"] += 1
                return
            img.reshape(msg.height, msg.width, 3)
            name, _, s = msg.header.frame_id.rpartition(":")
            if name != cam or not s.isdigit():
                bad["frame_id"] += 1
                return
            got[cam]["seq"].append(int(s))
            got[cam]["lat_ms"].append(lat_ms)
        return cb

    stop = threading.Event()

    def wait_stdin():
        sys.stdin.readline()  # a line, or EOF when the parent goes away
        stop.set()

    threading.Thread(target=wait_stdin, daemon=True).start()
    rclpy.init()
    node = rclpy.create_node("bench_image_sub")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        for c in cams:
            node.create_subscription(Image, topic(c), make_cb(c), _qos(args.reliable))
        print("ready", flush=True)
        hard_deadline = time.monotonic() + DISCOVERY_TIMEOUT_S + WARMUP_S + args.seconds + 30
        while not stop.is_set() and time.monotonic() < hard_deadline:
            executor.spin_once(timeout_sec=0.05)
        # Asked to stop: drain what is still in flight (until 0.5 s without a frame, at most 3 s).
        drain_until, last_count = time.monotonic() + 3.0, -1
        while time.monotonic() < drain_until:
            count = sum(len(g["seq"]) for g in got.values())
            if count == last_count:
                break
            last_count = count
            quiet_until = time.monotonic() + 0.5
            while time.monotonic() < min(quiet_until, drain_until):
                executor.spin_once(timeout_sec=0.05)
        _write_json(args.result, {"got": got, "bad": bad, "rmw": rclpy.get_rmw_implementation_identifier()})
        return 0
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    finally:
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


# ----------------------------------------------------------------------------------------------- orchestration

def child_env(shm: bool, log_dir: str) -> dict:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # never any DDS traffic off loopback
    env["ROS_DOMAIN_ID"] = str(random.randint(1, 101))  # a fresh domain per configuration
    env["ROS_LOG_DIR"] = log_dir
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)  # "default" means Fast DDS's own defaults
    if shm:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    else:
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return env


def _stop(proc: subprocess.Popen | None, timeout: float = 3.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def _lines(stream, q: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        q.put(line.strip())
    stream.close()


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_config(shm: bool, reliable: bool, args, work: Path, bar) -> dict:
    """Run one publisher/subscriber pair; returns the raw results of both."""
    tag = f"{'shm' if shm else 'default'}_{'rel' if reliable else 'be'}"
    env = child_env(shm, str(work / "ros_log"))
    common = ["--seconds", str(args.seconds), "--width", str(args.width), "--height", str(args.height),
              "--rate", str(args.rate), "--cameras", str(args.cameras)] + (["--reliable"] if reliable else [])
    pub_json, sub_json = work / f"{tag}_pub.json", work / f"{tag}_sub.json"
    pub_err, sub_err = work / f"{tag}_pub.err", work / f"{tag}_sub.err"
    pub = sub = None
    try:
        with open(sub_err, "w") as se, open(pub_err, "w") as pe:
            sub = subprocess.Popen([sys.executable, "-m", "bench.image_transport", "--role", "sub", "--result",
                                    str(sub_json)] + common, cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=se, text=True)
            pub = subprocess.Popen([sys.executable, "-m", "bench.image_transport", "--role", "pub", "--result",
                                    str(pub_json)] + common, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=pe, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(pub.stdout, lines), daemon=True).start()
        started = time.monotonic()
        deadline = started + 15 + DISCOVERY_TIMEOUT_S + WARMUP_S + args.seconds  # 15 s: two python/rclpy start-ups
        matched_at, shown = None, 0.0
        while pub.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{tag}: publisher did not finish in time\n{_tail(pub_err)}")
            if sub.poll() is not None:
                raise RuntimeError(f"{tag}: subscriber exited early ({sub.returncode})\n{_tail(sub_err)}")
            try:
                line = lines.get(timeout=0.1)
                if line == "matched":
                    matched_at = time.monotonic()
                    bar.set_postfix_str(f"{tag}: matched after {matched_at - started:.1f} s")
            except queue.Empty:
                pass
            if matched_at is not None:
                done = min(time.monotonic() - matched_at, WARMUP_S + args.seconds)
                bar.update(done - shown)
                shown = done
        bar.update(WARMUP_S + args.seconds - shown)
        if pub.returncode != 0:
            raise RuntimeError(f"{tag}: publisher exited {pub.returncode}\n{_tail(pub_err)}")
        time.sleep(0.3)  # frames still in flight
        sub.stdin.write("stop\n")
        sub.stdin.close()
        sub.wait(15)
        if sub.returncode != 0:
            raise RuntimeError(f"{tag}: subscriber exited {sub.returncode}\n{_tail(sub_err)}")
        return {"pub": json.loads(pub_json.read_text()), "sub": json.loads(sub_json.read_text())}
    finally:
        for p in (pub, sub):
            try:
                _stop(p)
            except Exception:  # noqa: BLE001 - cleanup must reach the other process
                pass


def summarize(raw: dict) -> dict:
    import numpy as np

    pub, sub = raw["pub"], raw["sub"]
    sent = received = 0
    lat: list[float] = []
    missing: dict[str, str] = {}
    for cam, (first, last) in pub["sent"].items():
        if first is None:
            continue
        window = range(first, last + 1)
        sent += len(window)
        seen = {}
        for s, l in zip(sub["got"][cam]["seq"], sub["got"][cam]["lat_ms"]):
            if first <= s <= last and s not in seen:
                seen[s] = l
        received += len(seen)
        lat.extend(seen.values())
        miss = [q for q in window if q not in seen]
        if miss:
            missing[cam] = _ranges(miss)
    a = np.asarray(lat) if lat else np.asarray([np.nan])
    pm = np.asarray(pub["publish_ms"]) if pub["publish_ms"] else np.asarray([np.nan])
    return {"sent": sent, "received": received,
            "drops_per_1000": 1000.0 * (sent - received) / sent if sent else float("nan"),
            "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(np.max(a)),
            "publish_p50": float(np.percentile(pm, 50)), "rmw": sub.get("rmw", "?"), "bad": sub.get("bad", {}),
            "missing": missing, "behind_s": pub.get("behind_s", 0.0), "acked": pub.get("acked")}


def _ranges(xs: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3,7'"""
    out, start, prev = [], xs[0], xs[0]
    for x in xs[1:] + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if x is not None:
            start = prev = x
    return ",".join(out)


def comparison_sentence(stats: dict) -> str:
    parts = []
    for qos in ("best effort", "reliable"):
        s, d = stats.get(("SHM profile", qos)), stats.get(("default transports", qos))
        if s and d and s["p50"] > 0:
            part = f"{qos} {d['p50']:.1f} / {s['p50']:.1f} ms = **{d['p50'] / s['p50']:.1f}×**"
            if d["drops_per_1000"] > s["drops_per_1000"]:
                part += (f" (and without the profile {d['drops_per_1000']:.0f} of every 1000 frames are lost, "
                         f"vs {s['drops_per_1000']:.0f} with it)")
            parts.append(part)
    if not parts:
        return ""
    return ("p50 latency without the SHM profile relative to with it: " + "; ".join(parts) + ".")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.image_transport", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per configuration")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--rate", type=float, default=30.0, help="Hz per camera")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--role", choices=["pub", "sub"], help=argparse.SUPPRESS)
    parser.add_argument("--reliable", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "pub":
        return run_publisher(args)
    if args.role == "sub":
        return run_subscriber(args)

    from tqdm import tqdm

    from bench.report import machine_line, markdown_table, write_section

    def on_term(signum, _frame):  # run the finally blocks (child cleanup) on SIGTERM/SIGHUP too
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)
    if not PROFILE.exists():
        print(f"missing Fast DDS profile {PROFILE}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench_image_transport_"))
    stats: dict = {}
    rows = []
    headers = ["transport", "QoS (depth 5)", "frames sent", "received", "drops / 1000",
               "latency p50 (ms)", "p99 (ms)", "max (ms)", "publish() p50 (ms)"]
    try:
        with tqdm(total=len(CONFIGS) * (WARMUP_S + args.seconds), unit="s", desc="image transport", mininterval=0.5,
                  bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]") as bar:
            for label, shm, reliable in CONFIGS:
                qos = "reliable" if reliable else "best effort"
                s = summarize(run_config(shm, reliable, args, work, bar))
                stats[(label, qos)] = s
                row = [label, qos, s["sent"], s["received"], f"{s['drops_per_1000']:.1f}", f"{s['p50']:.2f}",
                       f"{s['p99']:.2f}", f"{s['max']:.2f}", f"{s['publish_p50']:.2f}"]
                rows.append(row)
                tqdm.write(" | ".join(str(v) for v in row))
                if s["missing"]:
                    for cam, miss in s["missing"].items():
                        tqdm.write(f"  {cam}: missing sequence numbers {miss if len(miss) < 120 else miss[:120] + '…'}")
                if s["acked"] is False:
                    tqdm.write("  the reliable writers were not fully acknowledged 2 s after the last frame")
                if s["behind_s"] > 0.1:
                    tqdm.write(f"  publisher finished {s['behind_s']:.2f} s behind schedule")
                if any(s["bad"].values()):
                    tqdm.write(f"  malformed frames: {s['bad']}")
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e or 'SIGINT'}); child processes stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = markdown_table(headers, rows)
    rmw = next(iter(stats.values()))["rmw"]
    mb_s = args.cameras * args.rate * args.width * args.height * 3 / 1e6
    cmd = (f"python -m bench.image_transport --seconds {args.seconds:g} --width {args.width} --height {args.height} "
           f"--rate {args.rate:g} --cameras {args.cameras}")
    text = (f"{args.cameras} cameras × sensor_msgs/Image rgb8 {args.width}×{args.height} at {args.rate:g} Hz each "
            f"(≈{mb_s:.0f} MB/s), publisher and subscriber in separate processes, {rmw}, "
            f"SingleThreadedExecutor, localhost discovery. Latency = subscriber callback wall time − `header.stamp` "
            f"(publish-time wall clock), over the frames sent after a {WARMUP_S:g} s warm-up that starts once every "
            f"topic has matched. *SHM profile* = `FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds.xml` (16 MB shared-memory "
            f"segment + UDPv4); *default transports* = that variable unset (Fast DDS's 512 KB SHM segment cannot hold a "
            f"frame, so frames go over fragmented UDP). Best effort = `qos_profile_sensor_data` (the image contract); "
            f"`publish()` p50 = time to set `msg.data = frame.tobytes()` and publish one frame.\n\n"
            f"{table}\n\n{comparison_sentence(stats)} With only 2 cores, p99/max move a lot between runs when anything "
            f"else is running (load average below); p50 and drops are the stable columns.\n\n"
            f"Command: `{cmd}`. {machine_line()} 1-min load average before / after the run: "
            f"{load_before:.2f} / {os.getloadavg()[0]:.2f}.\n")
    print("\n" + text)
    if not args.no_write:
        path = write_section("image_transport", "## Image transport (camera frames between processes)\n\n" + text)
        print(f"wrote section image_transport in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
