"""robot_rl as a ROS user runs it: built with colcon, started with `ros2 launch` (the real launch / launch_ros /
ros2cli stack, vendored in ../shared/vendor/ros2-launch) from a plain shell, without scripts/ros_env.sh. The launch
files must validate and resolve the whole graph before starting anything, give every node the bringup's
environment, end with the graph's `exit_when` node, exit non-zero when a node fails, and a terminal's Ctrl-C (SIGINT
to the whole process group) must end every node cleanly. The bringup must run from the colcon install too."""
import os
import random
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from robot_rl import bringup
from robot_rl.ros import contract
from robot_rl.ros.probe import Probe, wait_for

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT.parent / "shared" / "vendor" / "ros2-launch"
LAUNCH_VENV = ROOT / ".venv-launch"
SIM_NODES = ["mujoco_bridge", "policy", "reward", "episode_manager"]
STARTED = re.compile(r"\[INFO\] \[(\w+)-\d+\]: process started with pid \[(\d+)\]")

pytestmark = [
    pytest.mark.graph,
    pytest.mark.skipif(not VENDOR.is_dir(), reason=f"{VENDOR} is absent: the ROS 2 launch stack (launch, launch_ros, "
                       "ros2cli) has no wheels, and these tests run the vendored copy beside the checkout"),
]


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Path:
    """robot_rl built with colcon (once for the module) into a temporary workspace; its install prefix."""
    subprocess.run(["bash", str(ROOT / "scripts" / "launch_env.sh")], cwd=ROOT, check=True, timeout=600)
    ws = tmp_path_factory.mktemp("colcon_ws")
    build = subprocess.run(
        [str(LAUNCH_VENV / "bin" / "colcon"), "--log-base", str(ws / "log"), "build", "--paths", str(ROOT),
         "--build-base", str(ws / "build"), "--install-base", str(ws / "install")],
        cwd=ws, env=plain_shell(ws), capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    return ws / "install"


def plain_shell(home: Path) -> dict:
    """A ROS user's shell: the side venv on PATH, the session's domain on loopback, and none of what
    scripts/ros_env.sh or the test conftest set (MUJOCO_GL, the Fast DDS profile, ROS_LOG_DIR, ...)."""
    return {"PATH": f"{LAUNCH_VENV / 'bin'}:/usr/bin:/bin", "HOME": str(home), "ROS_HOME": str(home / "ros"),
            "ROS_DOMAIN_ID": os.environ["ROS_DOMAIN_ID"], "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "OMP_NUM_THREADS": "1"}


class Sourced:
    """A command run in a plain shell that sourced the install's setup.bash, in a process group of its own (as a
    terminal runs it); its output is collected as it comes."""

    def __init__(self, install: Path, cwd: Path, *command: str):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["bash", "-c", f'source "{install}/setup.bash" && exec "$@"', "bash", *command], cwd=cwd,
            env=plain_shell(cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self._reader.start()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def started(self) -> dict[str, int]:
        """pid of every node launch reports started, by node."""
        return {m[1]: int(m[2]) for m in STARTED.finditer(self.output)}

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"still running after {timeout} s:\n{self.output[-6000:]}") from None
        self._reader.join(timeout=5)
        return code

    @classmethod
    def to_the_end(cls, install: Path, cwd: Path, *command: str, timeout: float) -> tuple["Sourced", int]:
        """Run it until it exits by itself: its exit code (after `timeout` s it is killed and the test fails)."""
        run = cls(install, cwd, *command)
        try:
            return run, run.finish(timeout)
        finally:
            run.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def write_graph(tmp_path: Path, nodes: list[dict], namespace: str) -> Path:
    """A graph file on the installed config/sim.yaml (paths in graph files resolve against the share directory)."""
    path = tmp_path / f"{namespace}.yaml"
    path.write_text(yaml.safe_dump({"name": namespace, "namespace": namespace, "params_files": ["config/sim.yaml"],
                                    "exit_when": "episode_manager", "nodes": nodes}))
    return path


def sim_graph(tmp_path: Path, namespace: str, **episode_manager) -> Path:
    return write_graph(tmp_path, [{"executable": n} for n in SIM_NODES[:-1]]
                       + [{"executable": "episode_manager", "params": episode_manager}], namespace)


def assert_every_node_finished_cleanly(run: Sourced, nodes: list[str]) -> None:
    out = run.output
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-6000:]
    for node in nodes:
        assert re.search(rf"\[INFO\] \[{node}-\d+\]: process has finished cleanly", out), f"{node}:\n{out[-6000:]}"


def test_sim_launch_runs_the_graph_until_its_exit_when_node_finishes(install, tmp_path):
    results = tmp_path / "episodes.jsonl"
    graph = sim_graph(tmp_path, f"lt_exit_{random.randint(0, 99999)}", num_episodes=2, max_steps=60,
                      results_path=str(results))
    # without the exit_when handler the other three nodes would run on
    run, code = Sourced.to_the_end(install, tmp_path, "ros2", "launch", "robot_rl", "sim.launch.py", f"graph:={graph}",
                                   timeout=150)
    assert code == 0, run.output[-6000:]
    assert len(results.read_text().splitlines()) == 2  # both episodes ran through bridge, policy and reward
    assert_every_node_finished_cleanly(run, SIM_NODES)


def test_process_group_sigint_ends_every_node_cleanly_and_nodes_have_the_bringups_environment(install, tmp_path):
    namespace = f"lt_sigint_{random.randint(0, 99999)}"
    graph = sim_graph(tmp_path, namespace, num_episodes=1000)
    probe = Probe("launch_probe")
    joint_states, images = [], []
    probe.node.create_subscription(contract.JOINT_STATES.msg_type, f"/{namespace}/{contract.JOINT_STATES.name}",
                                   joint_states.append, contract.JOINT_STATES.qos)
    image = contract.camera_image("front")
    probe.node.create_subscription(image.msg_type, f"/{namespace}/{image.name}", images.append, image.qos)
    run = Sourced(install, tmp_path, "ros2", "launch", "robot_rl", "sim.launch.py", f"graph:={graph}")
    try:
        wait_for(lambda: len(joint_states) >= 30 and len(images) >= 10, 120, "joint states and rendered images")
        pids = run.started()
        assert sorted(pids) == sorted(SIM_NODES)
        expected = {**bringup.graph_environment(plain_shell(tmp_path)),
                    "FASTDDS_DEFAULT_PROFILES_FILE": str(install / "robot_rl" / "share" / "robot_rl" / "config" /
                                                         "fastdds.xml")}
        for node, pid in pids.items():
            environ = dict(item.split("=", 1) for item in
                           Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item)
            assert {key: environ.get(key) for key in expected} == expected, node
        os.killpg(run.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does; launch then sends its own SIGINT
        code = run.finish(timeout=60)
    finally:
        run.kill()
        probe.close()
    assert code == 0, run.output[-6000:]
    assert_every_node_finished_cleanly(run, SIM_NODES)


@pytest.mark.parametrize("case", ["misspelt_key", "missing_package"])
def test_a_graph_that_cannot_be_validated_or_resolved_starts_nothing(install, tmp_path, case):
    if case == "misspelt_key":
        graph = sim_graph(tmp_path, "lt_typo", max_stepz=5)
        command, named = ["sim.launch.py", f"graph:={graph}"], "'max_stepz'"
    else:  # no robot_state_publisher in this workspace: the arm, camera, policy ... nodes must not start either
        command, named = ["franka_real.launch.py"], "'robot_state_publisher' not found"
    run, code = Sourced.to_the_end(install, tmp_path, "ros2", "launch", "robot_rl", *command, timeout=60)
    assert code != 0, run.output
    assert named in run.output and "process started" not in run.output, run.output


def test_a_node_that_fails_stops_the_graph_and_launch_exits_non_zero(install, tmp_path):
    graph = write_graph(tmp_path, [
        {"executable": "episode_manager"},
        {"executable": "reward", "params": {"source": "classifier", "classifier": {"model_path": str(tmp_path)}}},
    ], "lt_fail")
    run, code = Sourced.to_the_end(install, tmp_path, "ros2", "launch", "robot_rl", "sim.launch.py", f"graph:={graph}",
                                   timeout=120)
    assert code == 1, run.output[-6000:]
    assert "node 'reward' exited with code 2" in run.output
    assert_every_node_finished_cleanly(run, ["episode_manager"])  # stopped, not left running


def test_a_node_that_ends_cleanly_but_not_by_the_graphs_rule_still_fails_the_launch(install, tmp_path):
    """A clean exit may be a terminal's Ctrl-C that launch has not handled yet (graph_launch.INTERRUPT_GRACE_S); when
    no stop follows, it is a failure all the same."""
    graph = tmp_path / "early.yaml"
    graph.write_text(yaml.safe_dump({
        "name": "early", "namespace": f"lt_early_{random.randint(0, 99999)}", "params_files": ["config/sim.yaml"],
        "exit_when": "policy", "nodes": [{"executable": n} for n in SIM_NODES[:-1]] + [
            {"executable": "episode_manager", "params": {"num_episodes": 1, "max_steps": 20}}]}))
    run, code = Sourced.to_the_end(install, tmp_path, "ros2", "launch", "robot_rl", "sim.launch.py", f"graph:={graph}",
                                   timeout=120)
    assert code == 1, run.output[-6000:]
    assert "node 'episode_manager' exited with code 0; stopping the graph" in run.output, run.output[-6000:]


def test_the_bringup_runs_from_the_colcon_install(install, tmp_path):
    share = install / "robot_rl" / "share" / "robot_rl"
    where = Sourced(install, tmp_path, "python", "-c", "from robot_rl import bringup; print(bringup.data_root())")
    assert where.finish(timeout=60) == 0 and where.output.strip().splitlines()[-1] == str(share), where.output
    run, code = Sourced.to_the_end(install, tmp_path, "python", "-m", "robot_rl.bringup", "sim_scripted", "--namespace",
                                   "lt_bringup", "--set", "episode_manager.num_episodes=1", "--set",
                                   "episode_manager.max_steps=60", timeout=120)
    assert code == 0, run.output[-6000:]
    assert "episode 0" in run.output


def test_the_robot_description_points_at_the_one_installed_copy_of_the_meshes(install, tmp_path):
    launch_file = install / "robot_rl" / "share" / "robot_rl" / "launch" / "franka_real.launch.py"
    run = Sourced(install, tmp_path, "python", "-c", "import sys\n"
                  "from launch.launch_description_sources import load_python_launch_file_as_module\n"
                  "print(load_python_launch_file_as_module(sys.argv[1]).robot_description())", str(launch_file))
    assert run.finish(timeout=60) == 0, run.output
    meshes = re.findall(r'filename="([^"]+)"', run.output)
    assert len(meshes) >= 10 and all(m.startswith("file://") for m in meshes), meshes
    assert all(Path(m.removeprefix("file://")).is_file() for m in meshes), meshes
    assert not (install / "robot_rl" / "share" / "robot_rl" / "robot_rl").exists()  # no second copy under share/


def test_a_fleet_graph_launches_every_robot_and_ends_when_the_last_robot_is_done(install, tmp_path):
    """Per-robot nodes run once in each robot's namespace; the launch waits for `exit_when` in every robot."""
    suffix = random.randint(0, 99999)
    results = {f"lt_fleet_a_{suffix}": (tmp_path / "a.jsonl", 1), f"lt_fleet_b_{suffix}": (tmp_path / "b.jsonl", 2)}
    graph = tmp_path / "fleet.yaml"
    graph.write_text(yaml.safe_dump({
        "name": "fleet", "params_files": ["config/sim.yaml"], "exit_when": "episode_manager",
        "robots": {robot: {"episode_manager": {"num_episodes": n, "max_steps": 40, "results_path": str(path)}}
                   for robot, (path, n) in results.items()},
        "nodes": [{"executable": n, "per_robot": True} for n in SIM_NODES]}))
    run, code = Sourced.to_the_end(install, tmp_path, "ros2", "launch", "robot_rl", "sim.launch.py", f"graph:={graph}",
                                   timeout=180)
    assert code == 0, run.output[-6000:]
    for path, episodes in results.values():  # robot a finished first; the launch went on until b's second episode
        assert len(path.read_text().splitlines()) == episodes
    for node in SIM_NODES:
        assert len(re.findall(rf"\[INFO\] \[{node}-\d+\]: process has finished cleanly", run.output)) == 2, node
