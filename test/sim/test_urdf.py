"""urdf/panda.urdf must describe the same kinematics as the MJCF the simulator compiles."""
import os
import xml.etree.ElementTree as ET
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from robot_rl.sim.robot import ARM_JOINTS, FINGER_JOINTS, build_spec  # noqa: E402

URDF = Path(__file__).resolve().parents[2] / "urdf" / "panda.urdf"
ASSETS = Path(__file__).resolve().parents[2] / "robot_rl" / "sim" / "assets" / "panda"


def rpy_to_quat(rpy: np.ndarray) -> np.ndarray:
    """wxyz quaternion of R = Rz(yaw) Ry(pitch) Rx(roll)."""
    quat = np.array([1.0, 0.0, 0.0, 0.0])
    for axis, angle in ((2, rpy[2]), (1, rpy[1]), (0, rpy[0])):
        q = np.zeros(4)
        q[0], q[1 + axis] = np.cos(angle / 2), np.sin(angle / 2)
        out = np.zeros(4)
        mujoco.mju_mulQuat(out, quat, q)
        quat = out
    return quat


def floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split()])


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return build_spec("mesh").compile()


@pytest.fixture(scope="module")
def urdf_joints() -> dict[str, ET.Element]:
    return {j.get("name"): j for j in ET.parse(URDF).getroot().iter("joint")}


def test_same_movable_joints(model, urdf_joints):
    movable = {name for name, j in urdf_joints.items() if j.get("type") != "fixed"}
    assert movable == set(ARM_JOINTS) | set(FINGER_JOINTS)
    assert {model.joint(i).name for i in range(model.njnt) if model.joint(i).name.startswith("panda_")} == movable


def test_axes_and_limits(model, urdf_joints):
    for name in (*ARM_JOINTS, *FINGER_JOINTS):
        joint = urdf_joints[name]
        np.testing.assert_allclose(floats(joint.find("axis").get("xyz")), model.joint(name).axis, atol=1e-6)
        limit = joint.find("limit")
        np.testing.assert_allclose([float(limit.get("lower")), float(limit.get("upper"))], model.joint(name).range,
                                   atol=1e-6)
        assert joint.get("type") == ("revolute" if name in ARM_JOINTS else "prismatic")


def test_link_transforms(model, urdf_joints):
    for name, joint in urdf_joints.items():
        child = joint.find("child").get("link")
        origin = joint.find("origin")
        if child == "panda_tcp":
            pos, quat = model.site("TCP").pos, model.site("TCP").quat
        else:
            body = model.body(child)
            assert model.body(model.body_parentid[body.id]).name == joint.find("parent").get("link")
            pos, quat = body.pos, body.quat
        np.testing.assert_allclose(floats(origin.get("xyz")), pos, atol=1e-5, err_msg=name)
        urdf_quat = rpy_to_quat(floats(origin.get("rpy")))
        np.testing.assert_allclose(urdf_quat * np.sign(urdf_quat @ quat), quat, atol=1e-5, err_msg=name)


def test_mesh_files_exist():
    for mesh in ET.parse(URDF).getroot().iter("mesh"):
        filename = mesh.get("filename")
        assert filename.startswith("package://robot_rl/robot_rl/sim/assets/panda/")
        assert (ASSETS / Path(filename).name).is_file()
