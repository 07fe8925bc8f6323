"""Security half of the fault matrix: nothing from outside is ever unpickled, and weights whose schema does not match
the running policy are refused while the old ones keep running. (Checkpoints: safetensors + sha256, pickle / torch.save
files refused, test_policies.py; corrupt and pickle weights over DDS refused, test_learning_graph.py; no sockets
besides DDS, the test_fault_*.py graph tests.)"""
from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from std_msgs.msg import String, UInt8MultiArray

from robot_rl import bringup
from robot_rl.core.types import EE_SPACE_NAMES, JOINT_SPACE_NAMES
from robot_rl.core.state import STATE_NAMES
from robot_rl.policies import PolicySpec, build_policy, policy_to_bytes, save_policy
from robot_rl.ros import contract, records
from robot_rl.ros.probe import Probe, wait_for

SOURCES = sorted((Path(bringup.PACKAGE_ROOT) / "robot_rl").rglob("*.py")) + sorted(
    (Path(bringup.PACKAGE_ROOT) / "bench").rglob("*.py"))


def unsafe_loads(tree: ast.AST) -> list[str]:
    """Calls that can execute code from a file: pickle / torch.load / unsafe YAML / np.load with pickles allowed,
    and transformers' model loading without use_safetensors=True (it falls back to pytorch_model.bin, a pickle)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            found += [f"import {n}" for n in names if n and n.split(".")[0] in ("pickle", "dill", "joblib", "shelve")]
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if name in ("torch.load", "yaml.load", "yaml.unsafe_load", "pickle.load", "pickle.loads"):
            found.append(name)
        elif name.endswith("np.load") and keywords.get("allow_pickle") != "False":
            found.append(f"{name} without allow_pickle=False")
        elif name.endswith(".from_pretrained") and "Config" not in name and keywords.get("use_safetensors") != "True":
            found.append(f"{name} without use_safetensors=True")
    return found


def test_no_loader_in_the_package_can_unpickle():
    problems = {str(p.relative_to(bringup.PACKAGE_ROOT)): bad for p in SOURCES if (bad := unsafe_loads(ast.parse(
        p.read_text())))}
    assert problems == {}


def test_the_scan_catches_what_it_looks_for():
    code = ("import pickle\ntorch.load(f)\nnp.load(p)\nnp.load(p, allow_pickle=False)\nyaml.load(s)\n"
            "AutoModelForCausalLM.from_pretrained(d)\nAutoModelForCausalLM.from_pretrained(d, use_safetensors=True)\n"
            "AutoConfig.from_pretrained(d)\n")
    assert unsafe_loads(ast.parse(code)) == ["import pickle", "torch.load", "np.load without allow_pickle=False",
                                             "yaml.load", "AutoModelForCausalLM.from_pretrained without "
                                                          "use_safetensors=True"]


class TouchOnUnpickle:
    """Unpickling this creates a marker file: proof that a loader ran the pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_language_model_with_pickled_weights_is_refused_unopened(tmp_path):
    """LifeLong-RFT's `lm_path`: a checkpoint whose weights are only pytorch_model.bin (a pickle) is refused."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from policy_fixtures import tokenized_spec

    lm = tmp_path / "lm"
    Qwen2ForCausalLM(Qwen2Config(vocab_size=100, hidden_size=48, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(lm)
    (lm / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    torch.save({"model.embed_tokens.weight": TouchOnUnpickle(marker)}, lm / "pytorch_model.bin")
    policy = build_policy(tokenized_spec(lm_path=str(lm)))
    with pytest.raises(OSError, match="safetensors"):
        policy.load_pretrained_lm()
    assert not marker.exists()


def flow_policy(action_names, state_dim: int, seed: int):
    torch.manual_seed(seed)
    spec = PolicySpec(type="flow", action_names=list(action_names), state_dim=state_dim, horizon=5, execute_steps=5,
                      hidden_dim=16, depth=1, flow_steps=2)
    return build_policy(spec)


@pytest.mark.graph
def test_policy_node_refuses_weights_of_another_schema_and_keeps_its_own(tmp_path):
    """Well-formed safetensors with a matching sha256, but for another action space or observation size: refused
    with the reason on policy/active; the version that runs stays the old one."""
    save_policy(flow_policy(EE_SPACE_NAMES, len(STATE_NAMES), 0), tmp_path / "prior", version=0)
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.nodes.policy", "--ros-args", "-r", "__ns:=/schema",
                             "-p", "backend:=learned", "-p", f"checkpoint:={tmp_path / 'prior'}"],
                            env=bringup.ros_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = Probe("schema_probe")
    active = probe.collect(f"/schema/{contract.POLICY_ACTIVE.name}", records.PolicyVersion, contract.POLICY_ACTIVE.qos)
    pub_version = probe.node.create_publisher(String, f"/schema/{contract.POLICY_VERSION.name}",
                                              contract.POLICY_VERSION.qos)
    pub_weights = probe.node.create_publisher(UInt8MultiArray, f"/schema/{contract.POLICY_WEIGHTS.name}",
                                              contract.POLICY_WEIGHTS.qos)
    try:
        wait_for(lambda: active and active[-1].version == 0, 60, "the policy node to run version 0")
        for version, (names, state_dim, reason) in enumerate([
                (JOINT_SPACE_NAMES, len(STATE_NAMES), "weights act on"),
                (EE_SPACE_NAMES, len(STATE_NAMES) + 3, "state dim")], start=1):
            blob = policy_to_bytes(flow_policy(names, state_dim, version), version)
            pub_version.publish(String(data=records.encode(records.PolicyVersion(
                stamp=0.0, version=version, sha256=hashlib.sha256(blob).hexdigest(), policy_type="flow"))))
            pub_weights.publish(UInt8MultiArray(data=blob))
            refusal = wait_for(lambda: next((a for a in active if reason in a.message), None), 30, f"'{reason}'")
            assert refusal.version == 0 and refusal.message.startswith("refused new weights"), refusal
    finally:
        probe.close()
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert active[-1].version == 0 and "Traceback" not in out, out
    print(f"\nrefused: {[a.message for a in active if a.message]}")
