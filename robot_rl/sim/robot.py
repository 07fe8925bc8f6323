"""Franka Panda MuJoCo model built with `mujoco.MjSpec` from the vendored dm-robotics-panda MJCF files.

The arm (panda.xml) gets the hand (panda_hand.xml) attached at panda_link8 with the real Franka flange rotation
(-45 deg about z), 7 joint position actuators with gravity compensation, and a position actuator on the finger
tendon whose control is the gripper width in metres. Two variants share bodies, joints, inertials and limits:
"mesh" (vendored OBJ meshes) and "primitive" (capsules/boxes fitted to the meshes, for fast software rendering).
Arm link geoms are visual only; the finger pads and task objects collide.
"""
from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from robot_rl.core.types import ARM_JOINTS, EE_SPACE_NAMES as EE_NAMES, GRIPPER  # noqa: F401  (re-exported)

ASSETS_DIR = Path(__file__).resolve().parent / "assets" / "panda"
FINGER_JOINTS: tuple[str, str] = ("panda_finger_joint1", "panda_finger_joint2")
FINGER_TENDON = "split"  # (finger1 + finger2) / 2
Q_HOME = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])
MAX_GRIPPER_WIDTH = 0.08
PHYSICS_DT = 0.002
TCP_SITE = "TCP"
VARIANTS = ("primitive", "mesh")
HAND_MOUNT_QUAT = np.array([np.cos(-np.pi / 8), 0.0, 0.0, np.sin(-np.pi / 8)])  # flange -> hand: -45 deg about z

ARM_KP = np.array([4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0])
ARM_KV = np.array([300.0, 300.0, 250.0, 250.0, 40.0, 40.0, 40.0])   # about critical damping with the armature
ARM_ARMATURE = 0.1   # reflected rotor inertia (kg m^2), as in MuJoCo Menagerie's panda; keeps joints 5-7 stable
ARM_FORCE_LIMIT = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])
GRIPPER_KP = 1000.0
GRIPPER_FORCE_LIMIT = 40.0

# Primitive stand-ins for the mesh geoms: MuJoCo's inertia-based fit of each mesh (compiler fitaabb="false"),
# rounded to 0.1 mm. Columns: body, geom type, pos, quat (wxyz), size.
PRIMITIVE_GEOMS: tuple[tuple[str, str, tuple, tuple, tuple], ...] = (
    ("panda_link0", "capsule", (-0.0294, -0.0009, 0.0531), (0.0038, 0.5414, 0.0091, 0.8407), (0.0616, 0.0563)),
    ("panda_link1", "capsule", (0.0, -0.0325, -0.0676), (0.9817, 0.1905, 0.0, -0.0002), (0.0486, 0.107)),
    ("panda_link2", "capsule", (0.0, -0.0686, 0.0322), (0.5607, 0.828, -0.0002, 0.0001), (0.0486, 0.108)),
    ("panda_link3", "capsule", (0.0472, 0.0316, -0.0323), (-0.0149, 0.3679, 0.239, 0.8985), (0.0453, 0.0882)),
    ("panda_link4", "capsule", (-0.0359, 0.0335, 0.0312), (0.8228, 0.4494, 0.283, 0.2024), (0.0455, 0.0893)),
    ("panda_link5", "capsule", (0.0, 0.0528, -0.0984), (0.9895, -0.1444, 0.0003, 0.0024), (0.0443, 0.1481)),
    ("panda_link6", "capsule", (0.0523, 0.0069, 0.0085), (-0.0531, 0.7752, 0.0536, 0.6272), (0.0456, 0.0552)),
    ("panda_link7", "capsule", (0.0097, 0.0099, 0.0788), (-0.2778, 0.639, 0.2609, 0.6682), (0.0294, 0.0391)),
    ("panda_hand", "box", (0.0, -0.0008, 0.0253), (0.6952, 0.7188, -0.0003, 0.0002), (0.0189, 0.037, 0.0961)),
    ("panda_leftfinger", "box", (0.0, 0.0123, 0.0245), (0.701, 0.0855, -0.0856, 0.7028), (0.0085, 0.0086, 0.0284)),
    ("panda_rightfinger", "box", (0.0, 0.0123, 0.0245), (0.701, 0.0855, -0.0856, 0.7028), (0.0085, 0.0086, 0.0284)),
)
_GEOM_TYPES = {"capsule": mujoco.mjtGeom.mjGEOM_CAPSULE, "box": mujoco.mjtGeom.mjGEOM_BOX}
_PREFIX = "hand_"
_LINK_RGBA = (0.92, 0.92, 0.92, 1.0)
_FINGER_RGBA = (0.15, 0.15, 0.15, 1.0)


def _load_arm_and_hand() -> mujoco.MjSpec:
    """panda.xml with panda_hand.xml attached at panda_link8; the hand's actuator is replaced later."""
    arm = mujoco.MjSpec.from_file(str(ASSETS_DIR / "panda.xml"))
    hand = mujoco.MjSpec.from_file(str(ASSETS_DIR / "panda_hand.xml"))
    # The hand repeats the arm's texture/material "panda" and site "wrist_site": drop the duplicates, attach
    # with a temporary prefix, then strip it so the hand keeps its franka_ros names (geoms use the arm's
    # identical "panda" material). The finger tendon is rebuilt afterwards (its wraps refer to joints by name).
    for element in (hand.texture("panda"), hand.material("panda"), hand.site("wrist_site"),
                    hand.actuator("panda_hand_actuator"), hand.tendon("split")):
        hand.delete(element)
    arm.body("panda_link8").add_frame(quat=HAND_MOUNT_QUAT).attach_body(hand.body("panda_hand"), _PREFIX, "")
    for group in (arm.bodies, arm.joints, arm.geoms, arm.sites, arm.equalities, arm.meshes):
        for element in group:
            element.name = element.name.removeprefix(_PREFIX)
    for geom in arm.geoms:
        geom.material, geom.meshname = geom.material.removeprefix(_PREFIX), geom.meshname.removeprefix(_PREFIX)
    for equality in arm.equalities:
        equality.name1, equality.name2 = equality.name1.removeprefix(_PREFIX), equality.name2.removeprefix(_PREFIX)
    split = arm.add_tendon(name=FINGER_TENDON)
    for joint in FINGER_JOINTS:
        split.wrap_joint(joint, 0.5)
    return arm


def _use_primitives(spec: mujoco.MjSpec) -> None:
    """Swap every mesh geom for its fitted primitive and drop the mesh assets (kinematics/inertials untouched)."""
    for geom in [g for g in spec.geoms if g.type == mujoco.mjtGeom.mjGEOM_MESH]:
        spec.delete(geom)
    for mesh in list(spec.meshes):
        spec.delete(mesh)
    for body_name, kind, pos, quat, size in PRIMITIVE_GEOMS:
        rgba = _FINGER_RGBA if "finger" in body_name else _LINK_RGBA
        spec.body(body_name).add_geom(
            type=_GEOM_TYPES[kind], pos=pos, quat=quat, size=list(size) + [0.0] * (3 - len(size)),
            rgba=rgba, contype=0, conaffinity=0, group=1,
        )


def _add_actuators(spec: mujoco.MjSpec) -> None:
    """7 joint position actuators and the gripper width actuator (ctrl = width in metres)."""
    for name, kp, kv, force in zip(ARM_JOINTS, ARM_KP, ARM_KV, ARM_FORCE_LIMIT):
        joint = spec.joint(name)
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=kp, kv=kv)
        act.ctrlrange = joint.range
        act.forcerange = [-force, force]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        joint.actgravcomp = True
        joint.armature = ARM_ARMATURE
    # The "split" tendon is (finger1 + finger2) / 2, so gear 2 makes the actuator length the opening width.
    grip = spec.add_actuator(name=GRIPPER, target=FINGER_TENDON, trntype=mujoco.mjtTrn.mjTRN_TENDON, gear=[2, 0, 0, 0, 0, 0])
    grip.set_to_position(kp=GRIPPER_KP)
    grip.ctrlrange = [0.0, MAX_GRIPPER_WIDTH]
    grip.forcerange = [-GRIPPER_FORCE_LIMIT, GRIPPER_FORCE_LIMIT]
    grip.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE


def _add_scene(spec: mujoco.MjSpec) -> None:
    """Table top at z=0 (the robot base stands on it), lights, software-rendering friendly visuals, cameras."""
    spec.option.timestep = PHYSICS_DT
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.noslip_iterations = 0
    spec.visual.quality.shadowsize = 0
    spec.visual.headlight.ambient = [0.4, 0.4, 0.4]
    spec.visual.headlight.diffuse = [0.5, 0.5, 0.5]
    spec.stat.center = [0.4, 0.0, 0.2]
    spec.stat.extent = 1.0
    world = spec.worldbody
    world.add_light(name="top", pos=[0.5, 0.0, 2.0], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
                    diffuse=[0.6, 0.6, 0.6], castshadow=False)
    world.add_geom(name="table", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1.5, 1.5, 0.05], rgba=[0.55, 0.45, 0.35, 1])
    # Camera frame: x right, y up, looks along -z. Front camera: in front of the table, looking back and down.
    world.add_camera(name="front", pos=[1.0, 0.0, 0.7], xyaxes=[0, 1, 0, -0.616, 0, 0.788], fovy=58)
    # Wrist camera on the hand, behind the fingers, looking along the gripper (+z of the hand), tilted inward.
    tilt = np.deg2rad(20.0)
    spec.body("panda_hand").add_camera(
        name="wrist", pos=[0.06, 0.0, 0.04], fovy=70,
        xyaxes=[0, -1, 0, -np.cos(tilt), 0, -np.sin(tilt)],
    )


def build_spec(variant: str = "primitive") -> mujoco.MjSpec:
    """The robot on its table, ready for a task to add objects; compile with `spec.compile()`."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant {variant!r}; expected one of {VARIANTS}")
    spec = _load_arm_and_hand()
    spec.meshdir = str(ASSETS_DIR)
    spec.texturedir = str(ASSETS_DIR)
    if variant == "primitive":
        _use_primitives(spec)
    else:
        for geom in spec.geoms:
            if geom.type == mujoco.mjtGeom.mjGEOM_MESH:
                geom.contype, geom.conaffinity = 0, 0
    _add_actuators(spec)
    _add_scene(spec)
    return spec
