"""Start and stop a franky-sim server: a MuJoCo FR3 that speaks the libfranka network protocol (PyPI `franky-sim`).

franky-sim pins its own numpy/mujoco/pinocchio, so it lives in a separate venv (`.venv-franka-sim`, made by
scripts/install.sh) and runs as a child process in its own process group. It binds the FCI ports (1337 robot, 1338
gripper) on one loopback address; `free_loopback_address` picks an unused 127.0.0.x so that several servers (parallel
test modules, a developer's own) never collide and nothing listens beyond this host.

    python -m robot_rl.hardware.franky_sim            # prints the address to use as robot.host, Ctrl+C stops it
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SIM_VENV_ENV = "ROBOT_RL_FRANKY_SIM_VENV"
FCI_PORTS = (1337, 1338)  # libfranka robot and gripper servers: fixed by the protocol


def sim_executable() -> Path:
    venv = Path(os.environ.get(SIM_VENV_ENV, REPO_ROOT / ".venv-franka-sim"))
    return venv / "bin" / "franky-sim"


def _ports_free(address: str) -> bool:
    for port in FCI_PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def free_loopback_address(rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    for _ in range(200):
        address = f"127.0.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
        if _ports_free(address):
            return address
    raise RuntimeError("no loopback address with free FCI ports 1337/1338 found")


class FrankySimServer:
    """A franky-sim child process on a free loopback address; `stop()` ends its whole process group."""

    READY_LINE = "Connect to the server using"  # printed by franky-sim once both ports are bound

    def __init__(self, address: str | None = None, log_path: Path | None = None, script: Path | None = None):
        """`script`: a Python file run with the franky-sim venv's interpreter instead of the `franky-sim` entry point,
        with the same arguments (a wrapper that injects faults, in tests)."""
        self.address = address or free_loopback_address()
        self.log_path = Path(log_path or tempfile.mkstemp(prefix="franky_sim_", suffix=".log")[1])
        self.script = script
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> FrankySimServer:
        exe = sim_executable()
        if not exe.exists():
            raise FileNotFoundError(f"{exe} not found: run scripts/install.sh (it creates .venv-franka-sim), "
                                    f"or point {SIM_VENV_ENV} at a venv with franky-sim")
        env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), PYTHONUNBUFFERED="1")
        cmd = [str(exe.parent / "python"), str(self.script)] if self.script else [str(exe)]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd + ["--simulator", "mujoco", "--hostname", self.address],
                                         stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"franky-sim exited with code {self.proc.returncode}: {self.log_path.read_text()}")
            if self.READY_LINE in self.log_path.read_text():
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"franky-sim did not listen on {self.address} within {timeout} s")

    def pause(self) -> None:
        """SIGSTOP the server: the client sees the link die, as with a pulled cable (fault tests)."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the server leads its own process group
        for sig in (signal.SIGCONT, signal.SIGTERM, signal.SIGKILL):  # SIGCONT first: it may be paused
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            if sig != signal.SIGCONT:
                try:
                    self.proc.wait(timeout=5.0)
                    return
                except subprocess.TimeoutExpired:
                    continue

    def __enter__(self) -> FrankySimServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def main() -> int:
    with FrankySimServer() as server:
        print(f"franky-sim listening on {server.address}: run the arm node with robot.host:={server.address} "
              f"robot.realtime:=ignore (Ctrl+C stops it)", flush=True)
        try:
            server.proc.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
