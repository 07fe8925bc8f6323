"""Launch files (parsed, launch_ros is not installable here) and bringup validation: nothing starts half-way."""
import ast
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


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_uses_launch_ros_and_a_valid_graph(launch_file):
    source = launch_file.read_text()
    tree = ast.parse(source)
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"launch", "launch_ros.actions"} <= imported
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    graph = bringup.load_graph(ROOT / "config" / "graphs" / f"{default_graph_of(launch_file)}.yaml")
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
    assert "__ns:=/arm2" in cmd and "task:=pick_lift" in cmd
    assert cmd[cmd.index("--params-file") + 1].endswith("config/sim.yaml")
    with pytest.raises(bringup.GraphError, match="NODE.KEY=VALUE"):
        bringup.apply_overrides(graph, None, ["nonsense"])


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
