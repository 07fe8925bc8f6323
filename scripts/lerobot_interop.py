"""robot_rl <-> LeRobot 0.6.1 dataset round trip, both ways (`make interop` runs the steps in order, two venvs).

    write DIR [ROOT...]   robot_rl's venv: robot_rl writes sim collections (with and without video) and two datasets
                          through the recorder's writer path (FrameGrid -> EpisodeWriter -> LeRobotWriter, measured
                          stamps on the 2 ms physics grid, with and without video); ROOTs (e.g. one the ROS recorder
                          wrote) are checked as well, on copies
    lerobot DIR           LeRobot's venv: LeRobotDataset loads each with default tolerances (every item, a
                          delta_timestamps query on every item, the task strings, the stats against LeRobot's own
                          statistics), LeRobot's writer (resume / add_frame / save_episode) appends an episode; then
                          LeRobot writes a dataset of its own (AV1 video, episodes sharing data and video files)
    read DIR              robot_rl's venv: robot_rl reads LeRobot's dataset and the episodes LeRobot appended, then
                          its writer appends one more episode after LeRobot's
    reload DIR            LeRobot's venv: LeRobot loads every dataset again, every item
    backport SITE         LeRobot's venv, at install: lerobot 0.6.1 uses Python 3.12 syntax (PEP 695 type aliases and
                          generic parameter lists) in five modules; rewrites those to their 3.11 spelling, and guards
                          the two fake-kernel registrations torchvision makes without its C ops (CPU torch 2.13 beside
                          PyPI's CUDA build of torchvision 0.28, whose ops cannot load; transforms is all LeRobot uses)
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

FPS = 15
SHAPE = (48, 64, 3)
RECORDER_STEPS = (37, 23)
LEROBOT_TASK = "appended by lerobot"
ROBOT_RL_TASK = "appended by robot_rl"


def pattern(k: int, shape=SHAPE) -> np.ndarray:
    """Frame k: smooth gradients and a flat blue that all change with k, so that a frame decoded at the wrong index
    shows (neighbours differ by 12+ levels on average, AV1 at LeRobot's settings errs by a few)."""
    h, w, _ = shape
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 126 // w + 20 * (k % 6), y * 140 // h + 10 * (k % 11), np.full_like(x, 20 + 37 * k % 200)],
                    -1).astype(np.uint8)


def frame_error(decoded: np.ndarray, k: int) -> tuple[float, float]:
    """Mean absolute error (uint8 levels) of a decoded frame against pattern k, and against its nearest neighbour."""
    err = lambda j: float(np.abs(decoded.astype(float) - pattern(j, decoded.shape)).mean())  # noqa: E731
    return err(k), min(err(k - 1), err(k + 1))


def check_frame(decoded: np.ndarray, k: int, where: str) -> None:
    right, neighbour = frame_error(decoded, k)
    assert right < 12.0 and right < neighbour / 2, f"{where}: frame {k} decodes {right:.1f} levels from its " \
                                                  f"pattern, {neighbour:.1f} from a neighbour's"


# ---- write (robot_rl) --------------------------------------------------------------------------------------------
def write_recorder(root: Path, cameras: list[str]) -> None:
    """Two episodes through the recorder node's writer path, stamps as the MuJoCo bridge makes them."""
    from robot_rl.core.state import STATE_NAMES
    from robot_rl.core.types import EE_SPACE_NAMES
    from robot_rl.data.episode_writer import EpisodeWriter
    from robot_rl.data.frame_grid import FrameGrid
    from robot_rl.data.lerobot import LeRobotWriter

    class Log:
        def info(self, message): print("   ", message)
        warning = error = info

    writer = EpisodeWriter(partial(LeRobotWriter, root, FPS, STATE_NAMES, EE_SPACE_NAMES, cameras, SHAPE), Log())
    grid = FrameGrid(FPS, EE_SPACE_NAMES, cameras, SHAPE, stale_s=0.5,
                     on_frame=lambda frame: writer.add_frame(dict(frame, task="reach")), warn=print)
    for episode, steps in enumerate(RECORDER_STEPS):
        start = 10.0 + 100.0 * episode
        grid.begin(start)
        for k in range(steps):
            t = round((start + k / FPS) / 0.002) * 0.002   # control ticks land on the 2 ms physics grid
            for camera in cameras:
                grid.add_image(camera, t, pattern(k))
            grid.add_pose(t, (0.4 + 0.001 * k, 0.0, 0.3), (1.0, 0.0, 0.0, 0.0))
            grid.add_joint_states(t, [0.1 * k] * 7 + [0.04])
            grid.add_action(t, EE_SPACE_NAMES, np.full(7, 0.001 * k), False, 1.0 / FPS)
            grid.add_reward(t + 1.0 / FPS, -0.01, False)
        grid.end()
        writer.save(episode, True, grid.finish())
    while not writer.done():
        time.sleep(0.05)
    writer.close()


def write(out: Path, extra_roots: list[Path]) -> None:
    from robot_rl.data.collect_sim import collect_demos
    from robot_rl.data.lerobot import LeRobotReader

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    collect_demos("reach", 2, 0.3, 0, out / "sim_state", max_steps=40)
    collect_demos("reach", 2, 0.3, 1, out / "sim_video", cameras=("front",), image_size=64, max_steps=40)
    write_recorder(out / "recorder_video", ["front"])
    write_recorder(out / "recorder_state", [])
    for i, root in enumerate(extra_roots):
        shutil.copytree(root, out / f"given_{i}")
    roots = sorted(p.name for p in out.iterdir())
    for name in roots:
        reader = LeRobotReader(out / name)
        print(f"write: {name}: {reader.num_episodes} episodes, {reader.num_frames} frames, cameras {reader.cameras}")
    (out / "robot_rl_datasets.json").write_text(json.dumps(roots))


# ---- lerobot (LeRobot) -------------------------------------------------------------------------------------------
def load(root: Path, **kwargs):
    from lerobot.datasets import LeRobotDataset

    return LeRobotDataset(f"local/{root.name}", root=root, video_backend="pyav", **kwargs)


def as_uint8(chw) -> np.ndarray:
    """A LeRobot video item (C, H, W float in [0, 1]) as H x W x C uint8."""
    return np.round(chw.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)


def check_items(root: Path) -> dict:
    """Every item, then a delta_timestamps query (one step back, an action chunk ahead) on every item; video frames
    compared with what was encoded where every frame is pattern(frame_index) (the recorder-path datasets)."""
    import pyarrow.parquet as pq

    ds = load(root)
    patterned = root.name.startswith("recorder")
    info = json.loads((root / "meta" / "info.json").read_text())
    assert ds.meta.total_episodes == info["total_episodes"] and len(ds) == info["total_frames"], root
    cameras = ds.meta.video_keys
    tasks = set(ds.meta.tasks.index)
    for i in range(len(ds)):
        item = ds[i]
        assert item["task"] in tasks and isinstance(item["task"], str), f"{root}: item {i} task {item['task']!r}"
        k = int(item["frame_index"])
        assert abs(float(item["timestamp"]) - k / ds.fps) < 1e-6, f"{root}: item {i} timestamp {item['timestamp']}"
        for key in cameras:
            assert item[key].shape == (3, *ds.meta.features[key]["shape"][:2]), (root, key, item[key].shape)
            if patterned:
                check_frame(as_uint8(item[key]), k, f"{root.name}: LeRobot's item {i}")
    horizon = [k / ds.fps for k in range(8)]
    delta = {"observation.state": [-1 / ds.fps, 0.0], "action": horizon, **{key: [-1 / ds.fps, 0.0] for key in cameras}}
    with_delta = load(root, delta_timestamps=delta)
    for i in range(len(with_delta)):
        item = with_delta[i]
        assert item["action"].shape[0] == 8 and item["observation.state"].shape[0] == 2, root
        for key in cameras:
            assert item[key].shape[0] == 2, (root, key)
            k = int(item["frame_index"])
            if patterned and k > 0:   # one step back: the previous frame of the video
                check_frame(as_uint8(item[key][0]), k - 1, f"{root.name}: LeRobot's item {i}, one step back")
    # stats: LeRobot's own statistics of the same parquet columns, episode by episode, aggregated its way
    from lerobot.datasets.compute_stats import aggregate_stats, get_feature_stats

    numeric = [key for key, ft in info["features"].items() if ft["dtype"] not in ("video", "image", "string")]
    per_episode = []
    for path in sorted((root / "data").rglob("*.parquet")):
        table = pq.read_table(path)
        for ep in sorted(set(table.column("episode_index").to_pylist())):
            rows = table.filter(table.column("episode_index").to_numpy() == ep)
            values = {key: np.asarray(rows.column(key).to_pylist(), np.float64) for key in numeric}
            per_episode.append({key: get_feature_stats(v, axis=0, keepdims=v.ndim == 1) for key, v in values.items()})
    theirs = aggregate_stats(per_episode)
    worst = 0.0
    for key in numeric:
        ours = ds.meta.stats[key]
        for stat, value in theirs[key].items():
            assert stat in ours, f"{root}: stats.json {key} lacks {stat}"
            span = np.maximum(np.asarray(theirs[key]["max"]) - np.asarray(theirs[key]["min"]), 1e-9)
            # quantiles: LeRobot estimates them from a 5000-bin histogram, robot_rl computes them exactly
            tolerance = 2e-3 * span if stat.startswith("q") else 1e-6 * span + 1e-9
            gap = np.abs(np.asarray(ours[stat], np.float64).reshape(-1) - np.asarray(value, np.float64).reshape(-1))
            assert np.all(gap <= tolerance.reshape(-1)), f"{root}: stats {key}/{stat} {ours[stat]} vs LeRobot's {value}"
            worst = max(worst, float((gap / span.reshape(-1)).max()))
    for key in cameras:
        assert all(np.shape(ds.meta.stats[key][q]) == (3, 1, 1) for q in ("q01", "q10", "q50", "q90", "q99")), key
    return {"items": len(ds), "episodes": ds.meta.total_episodes, "tasks": sorted(tasks), "stats_gap": worst,
            "cameras": cameras}


def lerobot_append(root: Path) -> list[np.ndarray]:
    """LeRobot's own writer resumes the dataset and appends one episode; returns the actions it wrote."""
    from lerobot.datasets import LeRobotDataset

    ds = LeRobotDataset.resume(f"local/{root.name}", root=root, video_backend="pyav")
    rng = np.random.default_rng(7)
    actions = []
    for k in range(11):
        frame = {"task": LEROBOT_TASK}
        for key, ft in ds.meta.features.items():
            if key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
                continue
            if ft["dtype"] == "video":
                frame[key] = pattern(k, tuple(ft["shape"]))
            elif ft["dtype"] == "bool":
                frame[key] = np.array([k == 10])
            else:
                frame[key] = rng.normal(size=tuple(ft["shape"])).astype(ft["dtype"])
        actions.append(frame["action"])
        ds.add_frame(frame)
    ds.save_episode()
    ds.finalize()
    return actions


def lerobot_native(root: Path) -> dict:
    """A dataset of LeRobot's own: two episodes in one data file and one AV1 video file (its defaults)."""
    from lerobot.datasets import LeRobotDataset

    features = {"observation.state": {"dtype": "float32", "shape": (4,), "names": [f"s{i}" for i in range(4)]},
                "action": {"dtype": "float32", "shape": (3,), "names": [f"a{i}" for i in range(3)]},
                "observation.images.front": {"dtype": "video", "shape": SHAPE, "names": ["height", "width",
                                                                                         "channels"]}}
    ds = LeRobotDataset.create("local/lerobot_native", fps=FPS, features=features, root=root, robot_type="so100")
    rng = np.random.default_rng(3)
    written = {"state": [], "action": [], "lengths": [17, 26]}
    for episode, length in enumerate(written["lengths"]):
        for k in range(length):
            state, action = rng.normal(size=4).astype(np.float32), rng.normal(size=3).astype(np.float32)
            written["state"].append(state.tolist())
            written["action"].append(action.tolist())
            ds.add_frame({"observation.state": state, "action": action, "observation.images.front": pattern(k),
                          "task": f"pick the cube {episode}"})
        ds.save_episode()
    ds.finalize()
    return written


def lerobot(out: Path) -> None:
    appended = {}
    for name in json.loads((out / "robot_rl_datasets.json").read_text()):
        root = out / name
        before = check_items(root)
        appended[name] = [a.tolist() for a in lerobot_append(root)]
        after = check_items(root)
        assert after["episodes"] == before["episodes"] + 1 and LEROBOT_TASK in after["tasks"], (name, after)
        print(f"lerobot: {name}: {before['items']} items, {before['items']} delta_timestamps queries, tasks "
              f"{before['tasks']}, stats within {before['stats_gap']:.1e} of range of LeRobot's (quantiles "
              f"included); LeRobot's writer appended episode {before['episodes']}, reloaded: {after['items']} items")
    (out / "lerobot_appended.json").write_text(json.dumps(appended))
    native = out / "lerobot_native"
    (out / "lerobot_native.json").write_text(json.dumps(lerobot_native(native)))
    ds = load(native)
    print(f"lerobot: lerobot_native written: {ds.meta.total_episodes} episodes, {len(ds)} frames, codec "
          f"{ds.meta.features['observation.images.front']['info']['video.codec']}, "
          f"{len(list((native / 'videos').rglob('*.mp4')))} video file(s)")


# ---- read (robot_rl) ---------------------------------------------------------------------------------------------
def read(out: Path) -> None:
    from robot_rl.data.lerobot import LeRobotReader, LeRobotWriter

    native = LeRobotReader(out / "lerobot_native")
    written = json.loads((out / "lerobot_native.json").read_text())
    assert native.num_episodes == 2 and native.tasks == ["pick the cube 0", "pick the cube 1"], native.tasks
    states, actions = [], []
    for i, length in enumerate(written["lengths"]):
        ep = native.episode(i, images=True)
        states.append(ep["state"])
        actions.append(ep["action"])
        np.testing.assert_array_equal(ep["timestamp"], (np.arange(length) / FPS).astype(np.float32))
        for k in range(length):
            check_frame(ep["images.front"][k], k, f"lerobot_native episode {i}")
    np.testing.assert_array_equal(np.concatenate(states), np.asarray(written["state"], np.float32))
    np.testing.assert_array_equal(np.concatenate(actions), np.asarray(written["action"], np.float32))
    print(f"read: lerobot_native: {native.num_episodes} episodes, {native.num_frames} frames, AV1 decoded by PyAV, "
          "every frame at its index, state/action equal")

    appended = json.loads((out / "lerobot_appended.json").read_text())
    for name, lerobot_actions in appended.items():
        reader = LeRobotReader(out / name)
        last = reader.episode(reader.num_episodes - 1, images=True)
        np.testing.assert_array_equal(last["action"], np.asarray(lerobot_actions, np.float32))
        assert reader.tasks[last["task_index"][0]] == LEROBOT_TASK
        for camera in reader.cameras:
            for k in range(len(last["action"])):
                check_frame(last[f"images.{camera}"][k], k, f"{name}: LeRobot's episode")
        measured = "measured_timestamp" in last
        shape = tuple(reader.features[f"observation.images.{reader.cameras[0]}"]["shape"]) if reader.cameras else SHAPE
        writer = LeRobotWriter(out / name, reader.fps, reader.state_names, reader.action_names, reader.cameras,
                               shape, robot_type=reader.info["robot_type"])
        for k in range(9):
            writer.add_frame(np.zeros(len(reader.state_names)), np.full(7, k / 100), 0.0, k == 8, False,
                             {camera: pattern(k, shape) for camera in reader.cameras}, task=ROBOT_RL_TASK,
                             measured_timestamp=k / FPS if measured else None)
        writer.save_episode(success=False)
        writer.finalize()
        reader = LeRobotReader(out / name)
        print(f"read: {name}: LeRobot's episode read back ({len(last['action'])} frames, actions equal"
              f"{', video frames at their index' if reader.cameras else ''}); robot_rl's writer resumed after it: "
              f"{reader.num_episodes} episodes")


# ---- reload (LeRobot) --------------------------------------------------------------------------------------------
def reload(out: Path) -> None:
    for name in json.loads((out / "robot_rl_datasets.json").read_text()):
        result = check_items(out / name)
        assert {LEROBOT_TASK, ROBOT_RL_TASK} <= set(result["tasks"]), result["tasks"]
        print(f"reload: {name}: {result['episodes']} episodes, {result['items']} items and delta_timestamps "
              f"queries, stats within {result['stats_gap']:.1e} of range of LeRobot's")
    print("interop: all checks passed")


# ---- backport (LeRobot's venv, at install) -----------------------------------------------------------------------
TYPE_ALIAS = re.compile(r"^type (\w+) = ", re.M)
GENERIC_CLASS = re.compile(r"^class (\w+)\[([^\]]+)\](?:\(([^)]*)\))?:", re.M)
GENERIC_DEF = re.compile(r"^def (\w+)\[([^\]]+)\]\(", re.M)
FIRST_IMPORT = re.compile(r"^(?!from __future__)(?:import |from )", re.M)
UNGUARDED_FAKE = re.compile(r'^@torch\.library\.register_fake\(("[^"]+")\)$', re.M)


def backport_source(src: str) -> str:
    """PEP 695 syntax at module level -> TypeVar / Generic / plain aliases (what 3.12 means by it, at run time)."""
    def type_vars(params: str) -> tuple[list[str], str]:
        names, definitions = [], ""
        for param in params.split(","):
            name, _, bound = (s.strip() for s in param.partition(":"))
            names.append(name)
            if not re.search(rf"^{name} = TypeVar\(", src, re.M):
                definitions += f'{name} = TypeVar("{name}"' + (f", bound={bound}" if bound else "") + ")\n"
        return names, definitions

    def generic_class(m: re.Match) -> str:
        names, definitions = type_vars(m[2])
        bases = ", ".join(filter(None, [m[3], f"Generic[{', '.join(names)}]"]))
        return f"{definitions}class {m[1]}({bases}):"

    new = TYPE_ALIAS.sub(r"\1 = ", src)
    new = GENERIC_DEF.sub(lambda m: f"{type_vars(m[2])[1]}def {m[1]}(", GENERIC_CLASS.sub(generic_class, new))
    if "Generic[" in new or "TypeVar(" in new:
        first = FIRST_IMPORT.search(new)
        new = new[:first.start()] + "from typing import Generic, TypeVar\n" + new[first.start():]
    return new


def backport(site: Path) -> None:
    for path in sorted((site / "lerobot").rglob("*.py")):
        src = path.read_text()
        try:
            compile(src, str(path), "exec")
            continue
        except SyntaxError:
            pass
        new = backport_source(src)
        compile(new, str(path), "exec")   # fails loudly on syntax this rewrite does not know
        path.write_text(new)
        print(f"backport: {path.relative_to(site)}: Python 3.12 syntax rewritten for 3.11")
    meta = site / "torchvision" / "_meta_registrations.py"
    src = meta.read_text()
    new = UNGUARDED_FAKE.sub(r"@(torch.library.register_fake(\1) if torchvision.extension._has_ops() "
                             r"else lambda fn: fn)", src)
    if new != src:
        meta.write_text(new)
        print(f"backport: {meta.relative_to(site)}: {len(UNGUARDED_FAKE.findall(src))} fake-kernel registrations "
              "guarded by _has_ops()")


def main() -> None:
    step, target, *rest = sys.argv[1:]
    if step == "backport":
        backport(Path(target))
        return
    steps = {"write": lambda out: write(out, [Path(r) for r in rest]), "lerobot": lerobot, "read": read,
             "reload": reload}
    if step not in steps:
        raise SystemExit(f"unknown step {step!r}: one of {sorted(steps)} or backport")
    steps[step](Path(target))


if __name__ == "__main__":
    main()
