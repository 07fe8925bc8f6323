"""Manipulation tasks: scene objects, seeded randomised reset, privileged state and success predicate.

Every task adds its objects to the robot's MjSpec before compiling (`build`), binds ids after compiling (`bind`),
then `reset(data, rng)` places objects/goals. The table top is z = 0 in the robot base frame.
The scripted experts that read `state()` live in `expert.py`.
"""
from __future__ import annotations

import mujoco
import numpy as np

CUBE_HALF = 0.025
PEG_HALF = (0.012, 0.012, 0.04)
HOLE_HALF = 0.0165        # half-width of the square hole: 4.5 mm clearance per side
FIXTURE_HEIGHT = 0.04
INSERT_DEPTH = 0.02
LIFT_HEIGHT = 0.05
REACH_TOLERANCE = 0.02
PUSH_TOLERANCE = 0.03
FINGER_PADS = ("panda_leftfinger_collision", "panda_rightfinger_collision")

_OBJECT_FRICTION = [1.0, 0.01, 0.0002]


def _add_free_box(spec: mujoco.MjSpec, name: str, half: tuple[float, float, float], rgba, mass: float) -> None:
    body = spec.worldbody.add_body(name=name, pos=[0.5, 0.0, half[2]])
    body.add_freejoint(name=f"{name}_joint")
    body.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(half), rgba=rgba, mass=mass, condim=4,
                  friction=_OBJECT_FRICTION)


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def _vec(x) -> list[float]:
    return [float(v) for v in np.asarray(x).ravel()]


class Task:
    """Base class: subclasses add objects, sample them at reset and judge success."""

    name = ""
    objects: tuple[str, ...] = ()

    def build(self, spec: mujoco.MjSpec) -> None:
        """Add this task's bodies and sites to the scene."""

    def bind(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.goal = np.zeros(3)
        self.pad_ids = {model.geom(n).id for n in FINGER_PADS}
        self.qpos_adr = {o: model.jnt_qposadr[model.joint(f"{o}_joint").id] for o in self.objects}

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        """Sample object poses and the goal; writes qpos / model site positions (kinematics updated by caller)."""

    def success(self, data: mujoco.MjData, tcp: np.ndarray) -> bool:
        raise NotImplementedError

    def params(self) -> dict:
        """Constant task geometry the expert needs."""
        return {}

    def set_object_pose(self, data: mujoco.MjData, name: str, pos, yaw: float) -> None:
        adr = self.qpos_adr[name]
        data.qpos[adr:adr + 3] = pos
        data.qpos[adr + 3:adr + 7] = _yaw_quat(yaw)

    def object_pose(self, data: mujoco.MjData, name: str) -> tuple[np.ndarray, np.ndarray]:
        adr = self.qpos_adr[name]
        return data.qpos[adr:adr + 3].copy(), data.qpos[adr + 3:adr + 7].copy()

    def grasped(self, data: mujoco.MjData) -> bool:
        """True when both finger pads touch the task's first object."""
        if not self.objects:
            return False
        target = self.model.geom(self.objects[0]).id
        touching = set()
        for c in data.contact[: data.ncon]:
            pair = {int(c.geom1), int(c.geom2)}
            if target in pair:
                touching |= pair & self.pad_ids
        return touching == self.pad_ids

    def state(self, data: mujoco.MjData) -> dict:
        objects = {}
        for name in self.objects:
            pos, quat = self.object_pose(data, name)
            objects[name] = {"pos": _vec(pos), "quat": _vec(quat)}
        return {"objects": objects, "goal": _vec(self.goal), "grasped": bool(self.grasped(data)), **self.params()}


class Reach(Task):
    """Move the TCP to a visual-only goal point."""

    name = "reach"

    def build(self, spec: mujoco.MjSpec) -> None:
        spec.worldbody.add_site(name="goal", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[REACH_TOLERANCE, 0, 0],
                                rgba=[0.1, 0.8, 0.1, 0.5])

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        self.goal = rng.uniform([0.3, -0.25, 0.1], [0.6, 0.25, 0.45])
        self.model.site("goal").pos = self.goal

    def success(self, data: mujoco.MjData, tcp: np.ndarray) -> bool:
        return bool(np.linalg.norm(tcp - self.goal) < REACH_TOLERANCE)


class Push(Task):
    """Push a 5 cm cube into a target disc on the table."""

    name = "push"
    objects = ("cube",)

    def build(self, spec: mujoco.MjSpec) -> None:
        _add_free_box(spec, "cube", (CUBE_HALF,) * 3, [0.8, 0.2, 0.2, 1], 0.1)
        spec.worldbody.add_site(name="target", type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[PUSH_TOLERANCE, 0.001, 0],
                                rgba=[0.1, 0.8, 0.1, 0.6])

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        cube = np.array([*rng.uniform([0.42, -0.12], [0.55, 0.12]), CUBE_HALF])
        angle = rng.uniform(-np.pi, np.pi)
        distance = rng.uniform(0.10, 0.15)
        target = cube[:2] + distance * np.array([np.cos(angle), np.sin(angle)])
        target = np.clip(target, [0.35, -0.25], [0.65, 0.25])
        self.set_object_pose(data, "cube", cube, rng.uniform(-np.pi / 4, np.pi / 4))
        self.goal = np.array([*target, CUBE_HALF])
        self.model.site("target").pos = [*target, 0.001]

    def success(self, data: mujoco.MjData, tcp: np.ndarray) -> bool:
        cube, _ = self.object_pose(data, "cube")
        return bool(np.linalg.norm(cube[:2] - self.goal[:2]) < PUSH_TOLERANCE)

    def params(self) -> dict:
        return {"object_half_size": CUBE_HALF}


class PickLift(Task):
    """Grasp a 5 cm cube and lift it at least 5 cm."""

    name = "pick_lift"
    objects = ("cube",)

    def build(self, spec: mujoco.MjSpec) -> None:
        _add_free_box(spec, "cube", (CUBE_HALF,) * 3, [0.2, 0.3, 0.9, 1], 0.1)

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        cube = np.array([*rng.uniform([0.4, -0.15], [0.6, 0.15]), CUBE_HALF])
        self.set_object_pose(data, "cube", cube, rng.uniform(-np.pi / 4, np.pi / 4))
        self.goal = cube + [0.0, 0.0, LIFT_HEIGHT]

    def success(self, data: mujoco.MjData, tcp: np.ndarray) -> bool:
        cube, _ = self.object_pose(data, "cube")
        return bool(cube[2] >= CUBE_HALF + LIFT_HEIGHT and self.grasped(data))

    def params(self) -> dict:
        return {"object_half_size": CUBE_HALF, "rest_z": CUBE_HALF}


class PegInsert(Task):
    """Pick an upright square peg and insert it at least 2 cm into a square hole in a fixture."""

    name = "peg_insert"
    objects = ("peg",)

    def build(self, spec: mujoco.MjSpec) -> None:
        _add_free_box(spec, "peg", PEG_HALF, [0.9, 0.6, 0.1, 1], 0.05)
        fixture = spec.worldbody.add_body(name="fixture", pos=[0.5, 0.2, 0.0])
        wall = 0.02
        half_h = FIXTURE_HEIGHT / 2
        outer = HOLE_HALF + wall
        for i, (x, y, hx, hy) in enumerate([
            (HOLE_HALF + wall / 2, 0, wall / 2, outer), (-HOLE_HALF - wall / 2, 0, wall / 2, outer),
            (0, HOLE_HALF + wall / 2, HOLE_HALF, wall / 2), (0, -HOLE_HALF - wall / 2, HOLE_HALF, wall / 2),
        ]):
            fixture.add_geom(name=f"fixture_wall{i}", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[x, y, half_h],
                             size=[hx, hy, half_h], rgba=[0.3, 0.3, 0.35, 1])

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        peg = np.array([*rng.uniform([0.42, -0.18], [0.55, -0.02]), PEG_HALF[2]])
        hole = np.array([*rng.uniform([0.42, 0.08], [0.58, 0.2]), 0.0])
        self.set_object_pose(data, "peg", peg, rng.uniform(-0.2, 0.2))
        self.model.body("fixture").pos = hole
        self.goal = hole + [0.0, 0.0, FIXTURE_HEIGHT]

    def peg_bottom(self, data: mujoco.MjData) -> np.ndarray:
        pos, quat = self.object_pose(data, "peg")
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, quat)
        return pos - mat.reshape(3, 3)[:, 2] * PEG_HALF[2]

    def success(self, data: mujoco.MjData, tcp: np.ndarray) -> bool:
        bottom = self.peg_bottom(data)
        inside = np.linalg.norm(bottom[:2] - self.goal[:2]) < HOLE_HALF
        return bool(inside and bottom[2] <= FIXTURE_HEIGHT - INSERT_DEPTH)

    def params(self) -> dict:
        return {"peg_half_size": list(PEG_HALF), "fixture_height": FIXTURE_HEIGHT, "insert_depth": INSERT_DEPTH}


TASK_CLASSES: dict[str, type[Task]] = {t.name: t for t in (Reach, Push, PickLift, PegInsert)}
TASKS: tuple[str, ...] = tuple(TASK_CLASSES)


def make_task(name: str) -> Task:
    if name not in TASK_CLASSES:
        raise ValueError(f"unknown task {name!r}; expected one of {TASKS}")
    return TASK_CLASSES[name]()
