"""Bridge real-time factor: sim seconds per wall second.

Measured two ways, side by side in one run:
- in process (PandaSim alone): physics only, and physics + 2 camera renders at the camera rate;
- the mujoco_bridge node as its own process (ROS publishing included), free-running (`lockstep: false`, a huge
  `realtime_factor`), read from its clock (`/bench_rtf/clock`: the bringup remaps `/clock` into the namespace) by a
  probe node.
Settings: ours (500 Hz physics, 15 Hz control, 2 x 128x128 renders at 15 Hz) and gym-hil's (500 Hz physics,
10 Hz control, 2 x 128x128 renders at 10 Hz).

    python -m bench.bridge_rtf [--seconds 8]
"""
from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))

from bench.report import machine_line, markdown_table, write_section  # noqa: E402

SETTINGS = {"robot_rl (15 Hz control, cams 15 Hz)": (15.0, 15.0), "gym-hil-like (10 Hz control, cams 10 Hz)": (10.0, 10.0)}
SIZE = 128


def in_process_rtf(control_hz: float, camera_hz: float, render: bool, seconds: float) -> float:
    from robot_rl.sim import PandaSim

    sim = PandaSim(task="pick_lift", cameras={"front": (SIZE, SIZE), "wrist": (SIZE, SIZE)}, render=render)
    sim.reset(0)
    steps_per_tick = round(1 / (control_hz * sim.physics_dt))
    next_cam = 0.0
    start_wall, start_sim = time.perf_counter(), sim.time
    while time.perf_counter() - start_wall < seconds:
        if render and sim.time >= next_cam:
            sim.render("front")
            sim.render("wrist")
            next_cam += 1 / camera_hz
        sim.step(steps_per_tick)
    rtf = (sim.time - start_sim) / (time.perf_counter() - start_wall)
    sim.close()
    return rtf


def node_rtf(control_hz: float, camera_hz: float, seconds: float) -> float:
    from rosgraph_msgs.msg import Clock

    from robot_rl import bringup
    from robot_rl.ros import contract, convert
    from robot_rl.ros.probe import Probe, wait_for

    gfile = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_bridge_{os.getpid()}.yaml"
    gfile.write_text(f"name: bench\nparams_files: [{ROOT / 'config' / 'sim.yaml'}]\nnodes: [{{executable: mujoco_bridge}}]\n")
    graph = bringup.prepare(gfile, "bench_rtf", [
        "mujoco_bridge.lockstep=false", "mujoco_bridge.realtime_factor=1000.0", "mujoco_bridge.task=pick_lift",
        f"mujoco_bridge.control_hz={control_hz}", f"mujoco_bridge.camera_hz={camera_hz}",
        f"mujoco_bridge.camera_width={SIZE}", f"mujoco_bridge.camera_height={SIZE}"])
    proc = bringup.GraphProcess(graph, quiet=True)
    probe = Probe("bench_rtf_probe")
    clock = []
    probe.node.create_subscription(Clock, "/bench_rtf/clock", lambda m: clock.append((time.perf_counter(),
                                                                             convert.from_time(m.clock))),
                                   contract.CLOCK_QOS)
    try:
        proc.start()
        wait_for(lambda: len(clock) > 20, 60, "the bridge's /clock")
        t0 = len(clock)
        time.sleep(seconds)
        (w0, s0), (w1, s1) = clock[t0], clock[-1]
        return (s1 - s0) / (w1 - w0)
    finally:
        probe.close()
        proc.stop()
        gfile.unlink(missing_ok=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args(argv)
    rows = []
    jobs = [(name, hz) for name, hz in SETTINGS.items()]
    for name, (control_hz, camera_hz) in tqdm(jobs, desc="bridge RTF"):
        physics = in_process_rtf(control_hz, camera_hz, render=False, seconds=args.seconds / 2)
        rendered = in_process_rtf(control_hz, camera_hz, render=True, seconds=args.seconds / 2)
        node = node_rtf(control_hz, camera_hz, args.seconds)
        rows.append([name, f"{physics:.1f}", f"{rendered:.1f}", f"{node:.1f}", f"{node / rendered:.2f}"])
    table = markdown_table(["setting (500 Hz physics, 2 x 128² renders)", "physics only (in process)",
                            "physics + renders (in process)", "bridge node (ROS, own process)",
                            "node / in-process ratio"], rows)
    text = (f"Real-time factor = sim seconds per wall second (above 1 = faster than real time).\n\n{table}\n\n"
            f"Command: `python -m bench.bridge_rtf --seconds {args.seconds:g}`. {machine_line()}\n")
    print(text)
    write_section("bridge_rtf", "## Bridge real-time factor\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
