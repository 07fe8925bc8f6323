"""The dependency rule of docs/architecture.md, checked on the code: no module imports a layer above its own, and the
light entry points (config models, graph validation, the generic online loop, a flow checkpoint) do not load what
they do not use."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "robot_rl"
LOWER = ("core", "sim", "teleop", "policies", "data", "rewards", "rl", "configs", "hardware", "ros")
# what each part of robot_rl may import besides itself (in function bodies too: a lazy import still runs up)
ALLOWED = {
    "core": set(),
    "sim": {"core"},
    "teleop": {"core"},
    "policies": {"core", "sim"},
    "data": {"core", "sim"},
    "rewards": {"core", "data", "policies"},
    "rl": {"core", "data", "policies", "sim"},
    "configs": {"core", "rl", "rewards", "teleop"},
    "hardware": {"core", "configs"},
    "ros": {"core", "configs", "hardware"},
    "nodes": set(LOWER),
    "bringup": {"configs", "nodes"},  # nodes: its executable registry only (robot_rl/nodes/__init__.py)
    "demo": {*LOWER, "bringup"},
    "commands": {*LOWER, "bringup", "demo"},
}
HEAVY = ("rclpy", "torch", "cv2", "mujoco", "franky", "pyrealsense2", "pygame", "diffusers", "transformers")


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def robot_rl_imports(path: Path) -> set[str]:
    """The robot_rl parts a module imports, anywhere in the file."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        parts |= {n.split(".")[1] for n in names if n.startswith("robot_rl.")}
    return parts


def test_every_part_of_the_package_has_a_place_in_the_rule():
    assert {part_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__"} == set(ALLOWED)


def test_no_module_imports_a_layer_above_its_own():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = part_of(path)
        if part == "__init__":
            continue
        for imported in robot_rl_imports(path) - {part} - ALLOWED[part]:
            violations.append(f"{path.relative_to(ROOT)} ({part}) imports robot_rl.{imported}")
    assert not violations, "\n".join(violations)


def loaded_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys; print(sorted(sys.modules))"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    modules = set(eval(out.strip().splitlines()[-1]))
    return [m for m in HEAVY if m in modules]


def test_config_models_and_graph_validation_load_neither_ros_nor_torch():
    code = ("from robot_rl import bringup\n"
            "from robot_rl.configs import NODE_CONFIGS, config_model\n"
            "[config_model(exe) for exe in NODE_CONFIGS]\n"
            "from pathlib import Path\n"
            "[bringup.validate(bringup.load_graph(g)) for g in sorted(Path('config/graphs').glob('*.yaml'))]")
    assert loaded_after(code) == []


@pytest.mark.parametrize("code, allowed", [
    ("import robot_rl.rl.online", {"torch"}),                               # no MuJoCo for a foreign env
    ("import robot_rl.core.state, robot_rl.data", set()),                    # no OpenCV for the state layout
    ("import robot_rl.commands; robot_rl.commands.main(['--help'])", set()),  # `robot-rl --help` stays fast
])
def test_a_piece_loads_only_what_it_uses(code, allowed):
    code = f"try:\n    {code}\nexcept SystemExit:\n    pass"
    assert set(loaded_after(code)) <= allowed


def test_loading_a_flow_checkpoint_does_not_import_diffusers_or_transformers(tmp_path):
    code = ("import torch\nfrom robot_rl.policies import PolicySpec, build_policy, load_policy, save_policy\n"
            "spec = PolicySpec(type='flow', action_names=['a', 'b'], state_dim=3, horizon=2, hidden_dim=8, depth=1)\n"
            f"save_policy(build_policy(spec), {str(tmp_path)!r}, 0)\nload_policy({str(tmp_path)!r})")
    assert set(loaded_after(code)) <= {"torch"}
