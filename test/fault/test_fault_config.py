"""Fault matrix #8: malformed parameter or graph files. Each is refused with an error that names the file (and the
key, where there is one), and the bringup starts no process at all: validation happens before the first Popen.
test_launch_and_bringup.py covers unknown keys, bad values and malformed graph files; these add what it leaves
out (params files that are not valid YAML or not a mapping, graph entries of the wrong type, node names ROS would
refuse at start-up) and prove that nothing started."""
import re
import subprocess
import sys

import pytest

from robot_rl import bringup

GOOD_PARAMS = "/**/policy:\n  ros__parameters:\n    horizon: 5\n"


@pytest.fixture
def no_process_starts(monkeypatch):
    """bringup's Popen replaced by one that records calls: the tests assert it was never reached."""
    started = []

    def popen(cmd, *args, **kwargs):
        started.append(cmd)
        raise AssertionError(f"a node process was started: {cmd}")

    monkeypatch.setattr(bringup.subprocess, "Popen", popen)
    return started


def graph_file(tmp_path, params_text: str, nodes: str = "[{executable: policy}, {executable: episode_manager}]",
               extra: str = "") -> str:
    (tmp_path / "params.yaml").write_text(params_text)
    path = tmp_path / "graph.yaml"
    path.write_text(f"name: g\nparams_files: [{tmp_path / 'params.yaml'}]\nnodes: {nodes}\n{extra}")
    return str(path)


@pytest.mark.parametrize("params_text, named", [
    ("/**/policy:\n  ros__parameters:\n    horizon: 5\n   noise: 0.1\n", r"params.yaml: not valid YAML.*line 4"),
    ("/**/policy:\n  ros__parameters:\n    horizon: [5\n", r"params.yaml: not valid YAML"),
    ("/**/policy:\n  ros__parameters: [1, 2]\n", r"params.yaml: /\*\*/policy.ros__parameters must be a mapping"),
    ("/**/policy:\n  horizon: 5\n", r"params.yaml: section '/\*\*/policy' must hold exactly 'ros__parameters'"),
    ("- horizon\n", r"params.yaml: a params file maps node names"),
    ("/**/policy:\n  ros__parameters:\n    horizon: 5\n    sync_wait_s: soon\n", r"params.yaml.*'sync_wait_s'"),
    ("/**/episode_manager:\n  ros__parameters:\n    results_path: {a: 1}\n", r"params.yaml.*'results_path.a'"),
])
def test_malformed_params_file_is_named_and_nothing_starts(tmp_path, capsys, no_process_starts, params_text, named):
    assert bringup.main([graph_file(tmp_path, params_text)]) == 2
    err = capsys.readouterr().err
    assert re.search(named, err, re.S), err
    assert no_process_starts == []


@pytest.mark.parametrize("nodes, extra, named", [
    ("[{executable: policy, params: [1]}]", "", r"nodes\[0\].params must be a mapping"),
    ("[{executable: policy, name: 5}]", "", r"nodes\[0\].name 5 is not a valid ROS node name"),
    ("[{executable: policy, name: my-policy}]", "", r"'my-policy' is not a valid ROS node name"),
    ("[{executable: policy}, {executable: policy}]", "", r"nodes\[1\].name 'policy' is used twice"),
    ("[{executable: policy}]", "namespace: robot 1\n", r"namespace 'robot 1' is not a valid ROS namespace"),
])
def test_malformed_graph_entries_are_named_and_nothing_starts(tmp_path, capsys, no_process_starts, nodes, extra,
                                                              named):
    path = graph_file(tmp_path, GOOD_PARAMS, nodes, extra)
    assert bringup.main([path]) == 2
    err = capsys.readouterr().err
    assert "graph.yaml" in err and re.search(named, err), err
    assert no_process_starts == []


def test_params_files_must_be_a_list(tmp_path, capsys, no_process_starts):
    path = tmp_path / "graph.yaml"
    path.write_text("name: g\nparams_files: config/sim.yaml\nnodes: [{executable: policy}]\n")
    assert bringup.main([str(path)]) == 2
    assert "graph.yaml: 'params_files' must be a list of file paths" in capsys.readouterr().err
    assert no_process_starts == []


def test_a_node_started_directly_with_an_unparsable_params_file_exits_2_naming_it(tmp_path):
    """The path `ros2 launch` takes (no bringup validation): rcl's parse error, named, without a traceback."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/policy:\n  ros__parameters:\n    horizon: 5\n   noise: 0.1\n")
    proc = subprocess.run([sys.executable, "-m", "robot_rl.nodes.policy", "--ros-args", "--params-file", str(bad)],
                          env=bringup.ros_environment(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "configuration error" in proc.stderr and str(bad) in proc.stderr and "line 4" in proc.stderr
    assert "Traceback" not in proc.stderr
