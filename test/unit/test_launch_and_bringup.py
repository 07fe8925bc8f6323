"""Launch files (parsed here; test/graph/test_ros2_launch.py runs them with the real launch stack), package files,
bringup validation (nothing starts half-way), its environment, and a node's clean stop on repeated signals."""
import ast
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from robot_rl import bringup
from robot_rl.nodes import NODE_EXECUTABLES
from robot_rl.ros.node_runtime import flatten_defaults

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))


def default_graph_of(launch_file: Path) -> str:
    tree = ast.parse(launch_file.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "DEFAULT_GRAPH" for t in node.targets):
            return node.value.value
    raise AssertionError(f"{launch_file.name} has no DEFAULT_GRAPH")


def test_there_are_sim_and_hardware_launch_files():
    assert {f.name for f in LAUNCH_FILES} >= {"sim.launch.py", "franka_real.launch.py"}


def test_the_launch_files_start_graphs_through_the_bringups_functions():
    tree = ast.parse((ROOT / "launch" / "graph_launch.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"launch", "launch.actions", "launch_ros.actions"} <= imported
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and getattr(n.value, "id", "") == "bringup"}
    assert {"prepare", "graph_file", "graph_environment", "remappings"} <= used


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_uses_the_shared_graph_launch_and_a_valid_graph(launch_file):
    source = launch_file.read_text()
    tree = ast.parse(source)
    assert "graph_launch.py" in source and "graph_launch.graph_launch_description(DEFAULT_GRAPH" in source
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    graph = bringup.load_graph(bringup.graph_file(default_graph_of(launch_file)))
    scripts = {ep.name for ep in entry_points(group="console_scripts")}
    for spec in graph.nodes:
        assert spec.executable in scripts, f"{spec.executable} is not an installed console script"
    for f in graph.params_files:
        assert f.is_file()
    bringup.validate(graph)  # every parameter key declared by its node, every value valid


@pytest.mark.parametrize("graph_file", sorted((ROOT / "config" / "graphs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_graph_file_validates(graph_file):
    bringup.validate(bringup.load_graph(graph_file))


def test_every_node_is_a_console_script_with_a_config():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    for exe, module in NODE_EXECUTABLES.items():
        assert scripts.get(exe) == f"{module}:main"
        assert flatten_defaults(bringup.config_model(exe))


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def graph_with_params(tmp_path, params):
    pfile = write(tmp_path, "params.yaml", params)
    return write(tmp_path, "graph.yaml", {"name": "g", "params_files": [str(pfile)],
                                          "nodes": [{"executable": "policy"}, {"executable": "episode_manager"}]})


def test_unknown_parameter_names_key_and_file(tmp_path):
    gfile = graph_with_params(tmp_path, {"/**/policy": {"ros__parameters": {"horizon": 5, "horizn": 8}}})
    with pytest.raises(bringup.GraphError, match=r"params.yaml.*'policy'.*'horizn'"):
        bringup.validate(bringup.load_graph(gfile))


def test_bad_value_names_key_and_file(tmp_path):
    gfile = graph_with_params(tmp_path, {"/**/episode_manager": {"ros__parameters": {"max_steps": -3}}})
    with pytest.raises(bringup.GraphError, match=r"params.yaml.*'episode_manager'.*'max_steps'"):
        bringup.validate(bringup.load_graph(gfile))


def test_nested_safety_value_is_checked(tmp_path):
    pfile = write(tmp_path, "p.yaml", {"/**/mujoco_bridge": {"ros__parameters": {"safety": {"max_ee_step_m": "big"}}}})
    gfile = write(tmp_path, "g.yaml", {"params_files": [str(pfile)], "nodes": [{"executable": "mujoco_bridge"}]})
    with pytest.raises(bringup.GraphError, match=r"'safety.max_ee_step_m'"):
        bringup.validate(bringup.load_graph(gfile))


@pytest.mark.parametrize(
    "content, message",
    [
        ("nodes: [", "not valid YAML"),
        ("- just a list", "is a mapping"),
        ("nodes: []", "non-empty list"),
        ("nodes: [{executable: teleport}]", "not a robot_rl node"),
        ("nodes: [{executable: policy}]\nextra: 1", "unknown key"),
        ("nodes: [{executable: policy}]\nparams_files: [nowhere.yaml]", "does not exist"),
        ("nodes: [{executable: policy}]\nexit_when: bridge", "names no node"),
    ],
)
def test_malformed_graph_files_are_refused_with_the_file_named(tmp_path, content, message):
    gfile = write(tmp_path, "graph.yaml", content)
    with pytest.raises(bringup.GraphError, match=message) as err:
        bringup.load_graph(gfile)
    assert "graph.yaml" in str(err.value)


def test_bringup_exits_2_before_starting_anything_on_a_bad_graph(tmp_path, capsys):
    gfile = graph_with_params(tmp_path, {"/**/policy": {"ros__parameters": {"horizon": "five"}}})
    assert bringup.main([str(gfile)]) == 2
    assert "horizon" in capsys.readouterr().err


def test_node_command_carries_namespace_params_and_overrides():
    graph = bringup.load_graph(ROOT / "config" / "graphs" / "sim_scripted.yaml")
    bringup.apply_overrides(graph, "arm2", ["mujoco_bridge.task=pick_lift", "episode_manager.max_steps=300"])
    bridge = next(n for n in graph.nodes if n.name == "mujoco_bridge")
    cmd = bringup.node_command(graph, bridge)
    assert cmd[1:3] == ["-m", "robot_rl.nodes.mujoco_bridge"]
    assert "__ns:=/arm2" in cmd and "/clock:=/arm2/clock" in cmd and "task:=pick_lift" in cmd
    assert bringup.remappings(graph.namespace) == [("/clock", "/arm2/clock")]  # what the launch files give every node
    assert cmd[cmd.index("--params-file") + 1].endswith("config/sim.yaml")
    with pytest.raises(bringup.GraphError, match="NODE.KEY=VALUE"):
        bringup.apply_overrides(graph, None, ["nonsense"])


def test_a_fleet_graph_runs_per_robot_nodes_in_every_robot_and_one_learner_for_all():
    graph = bringup.prepare(ROOT / "config" / "graphs" / "sim_fleet.yaml", None,
                            ["episode_manager.num_episodes=4", "robot2/episode_manager.max_steps=30"])
    keys = sorted(spec.key for spec in graph.nodes)
    assert keys == sorted(["learner"] + [f"{r}/{n}" for r in ("robot1", "robot2")
                                         for n in ("mujoco_bridge", "policy", "reward", "episode_manager")])
    spec = {s.key: s for s in graph.nodes}
    assert spec["learner"].params["robots"] == ["robot1", "robot2"]  # the learner is told whom it serves
    cmd = bringup.node_command(graph, spec["robot2/mujoco_bridge"])
    assert "__ns:=/robot2" in cmd and "/clock:=/robot2/clock" in cmd and "seed:=1000" in cmd
    assert "__ns:=/fleet" in bringup.node_command(graph, spec["learner"])
    managers = [bringup.node_values(graph, spec[f"{r}/episode_manager"])[0] for r in ("robot1", "robot2")]
    assert [m["num_episodes"] for m in managers] == [4, 4] and [m["max_steps"] for m in managers][1] == 30
    assert all(m["policy_sync"] == "continuous" for m in managers)  # the one learner's policy sync reaches each


@pytest.mark.parametrize("robots, message", [
    ("[]", "'robots' maps each robot"), ("[robot1, 2bad]", "not a valid ROS namespace"),
    ("{robot1: {learner: {seed: 1}}}", "not per_robot nodes"), (None, "per_robot need 'robots'")])
def test_malformed_fleets_are_refused_naming_what_is_wrong(tmp_path, robots, message):
    text = "name: f\n" + (f"robots: {robots}\n" if robots else "") + \
        "nodes: [{executable: mujoco_bridge, per_robot: true}, {executable: learner}]\n"
    (tmp_path / "graph.yaml").write_text(text)
    with pytest.raises(bringup.GraphError, match=message):
        bringup.load_graph(tmp_path / "graph.yaml")


def shared_graph(tmp_path, params: dict, node_params: dict | None = None):
    pfile = write(tmp_path, "p.yaml", params)
    nodes = [{"executable": e, **({"params": node_params[e]} if node_params and e in node_params else {})}
             for e in ("mujoco_bridge", "policy", "reward", "learner", "episode_manager")]
    return bringup.load_graph(write(tmp_path, "g.yaml", {"params_files": [str(pfile)], "nodes": nodes}))


def test_the_drivers_control_rate_and_the_rewards_step_penalty_reach_every_node(tmp_path):
    graph = shared_graph(tmp_path, {"/**/mujoco_bridge": {"ros__parameters": {"control_hz": 30.0}},
                                    "/**/reward": {"ros__parameters": {"step_penalty": -0.05}}})
    bringup.validate(graph)
    params = {n.name: bringup.node_values(graph, n)[0] for n in graph.nodes}
    assert [params[n]["control_hz"] for n in ("policy", "learner", "episode_manager")] == [30.0] * 3
    assert params["learner"]["poco.step_penalty"] == -0.05
    assert bringup.control_hz(graph) == 30.0
    cmd = bringup.node_command(graph, next(n for n in graph.nodes if n.name == "learner"))
    assert "control_hz:=30.0" in cmd and "poco.step_penalty:=-0.05" in cmd


@pytest.mark.parametrize("node, key, value", [("policy", "control_hz", 15.0), ("learner", "poco.step_penalty", -0.01)])
def test_a_graph_whose_nodes_disagree_on_a_shared_value_is_refused_naming_both(tmp_path, node, key, value):
    section, _, leaf = key.rpartition(".")
    setting = {section: {leaf: value}} if section else {key: value}
    graph = shared_graph(tmp_path, {"/**/mujoco_bridge": {"ros__parameters": {"control_hz": 30.0}},
                                    "/**/reward": {"ros__parameters": {"step_penalty": -0.05}}}, {node: setting})
    source = "mujoco_bridge" if key == "control_hz" else "reward"
    with pytest.raises(bringup.GraphError, match=rf"one value per graph.*'{node}'.*{key}.*'{source}'"):
        bringup.validate(graph)


def test_the_learners_discount_reaches_deg_and_a_different_one_is_refused(tmp_path):
    """DEG pays progress as γΦ(s′) − Φ(s): with another γ than the learner's the shaping would change what is optimal."""
    graph = shared_graph(tmp_path, {"/**/learner": {"ros__parameters": {"poco": {"gamma": 0.95}}}})
    bringup.validate(graph)
    reward = next(n for n in graph.nodes if n.name == "reward")
    assert bringup.node_values(graph, reward)[0]["deg.gamma"] == 0.95
    graph = shared_graph(tmp_path, {"/**/learner": {"ros__parameters": {"poco": {"gamma": 0.95}}},
                                    "/**/reward": {"ros__parameters": {"deg": {"gamma": 0.99}}}})
    with pytest.raises(bringup.GraphError, match=r"discount must be one value per graph.*'reward'.*'learner'"):
        bringup.validate(graph)


def test_config_is_found_in_the_checkout_and_graphs_by_name(monkeypatch, tmp_path):
    assert bringup.data_root() == ROOT
    assert bringup.graph_file("sim_scripted") == ROOT / "config" / "graphs" / "sim_scripted.yaml"
    assert bringup.graph_file("config/graphs/sim_scripted.yaml") == Path("config/graphs/sim_scripted.yaml")
    monkeypatch.setattr(bringup, "PACKAGE_ROOT", tmp_path)  # installed without ament: say what to do
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    with pytest.raises(bringup.GraphError, match="source the setup.bash of its colcon install"):
        bringup.data_root()


def test_the_graph_environment_fills_what_the_shell_leaves_unset():
    env = bringup.graph_environment({"MUJOCO_GL": "glfw", "TMPDIR": "/scratch"})
    assert env == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOG_DIR": "/scratch/robot_rl_ros_log",
                   "FASTDDS_DEFAULT_PROFILES_FILE": str(ROOT / "config" / "fastdds.xml"), "MUJOCO_GL": "glfw",
                   "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    full = bringup.ros_environment({"PATH": "/bin", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"})
    assert full["PATH"] == "/bin" and full["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET" and full["MUJOCO_GL"] == "egl"


# an import name whose dependency key is not python3-<name> or the ROS package of the same name
DEPENDENCY_OF_IMPORT = {"cv2": "python3-opencv", "franky": "franky-control"}


def test_package_xml_declares_every_package_robot_rl_imports():
    root = ET.parse(ROOT / "package.xml", ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))).getroot()
    assert not [d.text for d in root.iter("buildtool_depend")], "ament_python packages declare no buildtool"
    declared = {d.text for d in root.iter("exec_depend")}
    pip_only = re.findall(r"[\w-]+", " ".join(c.text for c in root.iter(ET.Comment)))  # not in rosdep
    imported = set()
    for path in (ROOT / "robot_rl").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and not node.level else []
            imported |= {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"robot_rl"}
    missing = [name for name in sorted(imported)
               if not {name, DEPENDENCY_OF_IMPORT.get(name, f"python3-{name}")} & (declared | set(pip_only))]
    assert not missing, f"imported by robot_rl, but neither an exec_depend nor listed as pip-only: {missing}"


NODE_WITH_A_SLOW_CLOSE = """
import time
from rclpy.node import Node
from robot_rl.ros.node_runtime import run_node

class SlowClose(Node):  # no timer: nothing wakes its executor but a signal
    def __init__(self):
        super().__init__("slow_close")
        print("up", flush=True)

    def close(self):
        print("closing", flush=True)
        time.sleep(1.5)  # a renderer or a gripper thread being closed
        print("closed", flush=True)

raise SystemExit(run_node(SlowClose))
"""


@pytest.mark.parametrize("first, second", [("SIGINT", "SIGINT"), ("SIGINT", "SIGTERM"), ("SIGTERM", "SIGINT")])
def test_a_second_signal_during_a_nodes_cleanup_does_not_interrupt_it(tmp_path, first, second):
    """A terminal's Ctrl-C reaches the whole process group, and `ros2 launch` sends its own SIGINT (SIGTERM later):
    the node must finish its cleanup and exit 0, with no KeyboardInterrupt traceback."""
    script = tmp_path / "node.py"
    script.write_text(NODE_WITH_A_SLOW_CLOSE)
    proc = subprocess.Popen([sys.executable, str(script)], env=bringup.ros_environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line.rstrip()) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        assert lines.get(timeout=60) == "up"
        time.sleep(0.5)  # in its spin now, where nothing but the signal wakes it
        os.killpg(proc.pid, getattr(signal, first))
        assert lines.get(timeout=10) == "closing"
        os.killpg(proc.pid, getattr(signal, second))
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=5)
    out = list(lines.queue)
    assert proc.returncode == 0 and "closed" in out and not any("Traceback" in line for line in out), out


def test_signals_that_keep_coming_while_a_stopped_node_exits_do_not_kill_it(tmp_path):
    """After its cleanup the interpreter's own teardown (torch, MuJoCo, DDS: seconds under load) restores the default
    handlers: a signal then killed the node (-2), and launch reported a clean stop as a crash."""
    script = tmp_path / "node.py"
    script.write_text(NODE_WITH_A_SLOW_CLOSE)
    proc = subprocess.Popen([sys.executable, str(script)], env=bringup.ros_environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        assert [proc.stdout.readline().strip() for _ in range(2)] == ["closing", "closed"]
        while proc.poll() is None:  # until it has exited: every moment of its teardown gets a signal
            proc.send_signal(signal.SIGINT)
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0
