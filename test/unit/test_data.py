"""LeRobot v3 dataset writer/reader: round trip, stats, resume, crash safety, validation, chunking, sim demos."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from robot_rl.core.types import EE_SPACE_NAMES
from robot_rl.core.state import STATE_NAMES, state_vector
from robot_rl.data import lerobot
from robot_rl.data.lerobot import DatasetError, LeRobotReader, LeRobotWriter, chunk_dataset

IMAGE_SHAPE = (32, 48, 3)
STATE_DIM, ACTION_DIM = 4, 3


def make_writer(root: Path) -> LeRobotWriter:
    return LeRobotWriter(root, 10, [f"s{i}" for i in range(STATE_DIM)], [f"a{i}" for i in range(ACTION_DIM)],
                         cameras=["front"], image_shape=IMAGE_SHAPE)


def smooth_image(t: int) -> np.ndarray:
    """A smooth, moving colour gradient (compresses well, so lossy decoding stays close)."""
    h, w, _ = IMAGE_SHAPE
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 4 + t * 8) % 256, (y * 6 + t * 4) % 256, np.full_like(x, 60 + t)], -1).astype(np.uint8)


def record(writer: LeRobotWriter, length: int, seed: int, save: bool = True) -> dict[str, np.ndarray]:
    """Add `length` random frames (and save them); returns what was written."""
    rng = np.random.default_rng(seed)
    ep = {"state": rng.normal(size=(length, STATE_DIM)).astype(np.float32),
          "action": rng.normal(size=(length, ACTION_DIM)).astype(np.float32),
          "reward": (np.arange(length) == length - 1).astype(np.float32),
          "done": np.arange(length) == length - 1, "is_intervention": rng.random(length) < 0.3,
          "images": np.stack([smooth_image(t + seed) for t in range(length)])}
    for t in range(length):
        writer.add_frame(ep["state"][t], ep["action"][t], ep["reward"][t], ep["done"][t], ep["is_intervention"][t],
                         {"front": ep["images"][t]}, task=f"task {seed % 2}")
    if save:
        writer.save_episode(success=True)
    return ep


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, list[dict[str, np.ndarray]]]:
    root = tmp_path / "ds"
    with make_writer(root) as writer:
        episodes = [record(writer, 12, 0), record(writer, 9, 1)]
    return root, episodes


def test_round_trip(dataset):
    root, written = dataset
    reader = LeRobotReader(root)
    assert reader.num_episodes == 2 and reader.num_frames == 21 and reader.fps == 10
    assert reader.action_names == ["a0", "a1", "a2"] and reader.cameras == ["front"]
    assert reader.tasks == ["task 0", "task 1"]
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["features"]["action"]["names"] == ["a0", "a1", "a2"]
    for i, ep in enumerate(written):
        got = reader.episode(i, images=True)
        for key in ("state", "action", "reward", "done", "is_intervention"):
            np.testing.assert_array_equal(got[key], ep[key])
        n = len(ep["state"])
        np.testing.assert_allclose(got["timestamp"], np.arange(n) / 10, atol=1e-6)
        np.testing.assert_array_equal(got["task_index"], i)
        assert lerobot._video_frame_count(reader.video_path(i, "front")) == n
        assert got["images.front"].shape == (n, *IMAGE_SHAPE)
        assert np.abs(got["images.front"].astype(float) - ep["images"]).mean() < 6.0
    assert reader.episodes[1]["dataset_from_index"] == 12 and reader.episodes[1]["success"] is True
    frames = list(reader.frames())
    assert [f["index"] for f in frames] == list(range(21)) and frames[12]["episode_index"] == 1


def test_stats_match_numpy(dataset):
    root, written = dataset
    stats = LeRobotReader(root).stats
    for key, field in (("observation.state", "state"), ("action", "action"), ("next.reward", "reward")):
        values = np.concatenate([ep[field] for ep in written]).reshape(21, -1).astype(np.float64)
        for stat, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max)):
            np.testing.assert_allclose(stats[key][stat], fn(values, axis=0), rtol=1e-6, atol=1e-9)
        assert stats[key]["count"] == [21]
    pixels = np.concatenate([ep["images"] for ep in written]).reshape(-1, 3) / 255.0
    image = stats["observation.images.front"]
    np.testing.assert_allclose(np.ravel(image["mean"]), pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(image["std"]), pixels.std(0), rtol=1e-9)
    assert np.shape(image["mean"]) == (3, 1, 1)


def test_resume_appends(dataset):
    root, written = dataset
    writer = make_writer(root)
    assert writer.num_episodes == 2
    extra = record(writer, 7, 2)
    writer.finalize()
    reader = LeRobotReader(root)
    assert reader.num_episodes == 3 and reader.num_frames == 28
    ep = reader.episode(2)
    np.testing.assert_array_equal(ep["action"], extra["action"])
    np.testing.assert_array_equal(ep["index"], np.arange(21, 28))
    states = np.concatenate([w["state"] for w in written] + [extra["state"]]).astype(np.float64)
    np.testing.assert_allclose(reader.stats["observation.state"]["mean"], states.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(reader.stats["observation.state"]["std"], states.std(0), rtol=1e-6, atol=1e-9)


def test_resume_refuses_other_features(dataset):
    root, _ = dataset
    with pytest.raises(DatasetError, match="features"):
        LeRobotWriter(root, 10, ["x"], ["a0", "a1", "a2"], cameras=["front"], image_shape=IMAGE_SHAPE)


def test_crash_mid_episode_keeps_earlier_episodes(tmp_path: Path):
    root = tmp_path / "ds"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = {[str(Path(__file__).parent), str(Path(__file__).parent.parent)]!r}
        from test_data import make_writer, record
        writer = make_writer({str(root)!r})
        record(writer, 10, 0)
        record(writer, 6, 1, save=False)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    reader = LeRobotReader(root)
    assert reader.num_episodes == 1 and reader.num_frames == 10
    assert not (root / "data" / "chunk-000" / "file-001.parquet").exists()
    writer = make_writer(root)   # resume: removes the leftovers, appends as episode 1
    assert not list(root.rglob("*.partial.mp4"))
    record(writer, 5, 1)
    writer.finalize()
    assert LeRobotReader(root).num_episodes == 2


def test_reader_refuses_short_video(dataset):
    root, _ = dataset
    path = LeRobotReader(root).video_path(1, "front")
    h, w, _ = IMAGE_SHAPE
    video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    for t in range(8):   # episode 1 has 9 rows
        video.write(smooth_image(t))
    video.release()
    with pytest.raises(DatasetError, match="8 video frames"):
        LeRobotReader(root)


def test_writer_refuses_dropped_frames(dataset, monkeypatch):
    root, _ = dataset
    writer = make_writer(root)
    monkeypatch.setattr(lerobot, "_video_frame_count", lambda path: 3)
    record(writer, 5, 2, save=False)
    with pytest.raises(DatasetError, match="not saved"):
        writer.save_episode()
    monkeypatch.undo()
    assert writer.num_episodes == 2 and writer.pending_frames == 0
    assert LeRobotReader(root).num_episodes == 2 and not list(root.rglob("*.partial.mp4"))


@pytest.mark.parametrize("edit, key", [
    (lambda info: info.pop("fps"), "'fps'"),
    (lambda info: info.update(codebase_version="v2.1"), "'codebase_version'"),
    (lambda info: info["features"].pop("action"), "'features.action'"),
    (lambda info: info.update(total_frames=5), "'total_frames'"),
])
def test_reader_refuses_corrupt_info(dataset, edit, key):
    root, _ = dataset
    path = root / "meta" / "info.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=key) as err:
        LeRobotReader(root)
    assert "info.json" in str(err.value)


def test_reader_refuses_unparsable_info(dataset):
    root, _ = dataset
    (root / "meta" / "info.json").write_text("{not json")
    with pytest.raises(DatasetError, match="info.json: invalid JSON"):
        LeRobotReader(root)


def test_chunk_dataset_pads_an_absolute_action_space_with_its_last_action(dataset):
    root, written = dataset
    chunks = chunk_dataset(LeRobotReader(root), horizon=4)
    assert chunks.states.shape == (21, STATE_DIM) and chunks.actions.shape == (21, 4, ACTION_DIM)
    assert chunks.mask.shape == (21, 4) and chunks.episode_index.tolist() == [0] * 12 + [1] * 9
    np.testing.assert_array_equal(chunks.actions[0], written[0]["action"][:4])
    last = chunks.actions[11]   # final frame of episode 0: one real step, three repeats
    np.testing.assert_array_equal(last, np.repeat(written[0]["action"][-1:], 4, axis=0))
    assert chunks.mask[11].tolist() == [True, False, False, False]
    assert chunks.mask[9].tolist() == [True, True, True, False]
    np.testing.assert_array_equal(chunks.states[12], written[1]["state"][0])


def test_chunk_dataset_holds_the_arm_past_the_end_of_an_ee_delta_episode(tmp_path: Path):
    """A demo that ends mid-motion (a reach stops at its success) must not teach a policy to keep moving: past the
    end the EE deltas are zero and the gripper keeps its width."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.01, 0.01, (6, len(EE_SPACE_NAMES))).astype(np.float32)
    actions[:, -1] = 0.03  # gripper width, absolute
    with LeRobotWriter(tmp_path / "ee", 10, [f"s{i}" for i in range(STATE_DIM)], list(EE_SPACE_NAMES)) as writer:
        for t in range(len(actions)):
            writer.add_frame(np.zeros(STATE_DIM, np.float32), actions[t], 0.0, t == len(actions) - 1, False, {},
                             task="reach")
        writer.save_episode(success=True)
    chunks = chunk_dataset(LeRobotReader(tmp_path / "ee"), horizon=4)
    np.testing.assert_array_equal(chunks.actions[4, 0], actions[4])
    np.testing.assert_array_equal(chunks.actions[4, 1], actions[5])
    for late in chunks.actions[4, 2:]:
        np.testing.assert_array_equal(late[:-1], 0.0)
        assert late[-1] == actions[-1, -1]
    assert chunks.mask[4].tolist() == [True, True, False, False]


def test_state_vector_layout():
    v = state_vector([1, 2, 3], [1, 0, 0, 0], 0.04, np.arange(8))
    assert v.dtype == np.float32 and v.shape == (len(STATE_NAMES),)
    np.testing.assert_allclose(v, [1, 2, 3, 1, 0, 0, 0, 0.04, 0, 1, 2, 3, 4, 5, 6])


def test_collect_demos_reach(tmp_path: Path):
    from robot_rl.data.collect_sim import collect_demos

    root = tmp_path / "reach"
    summary = collect_demos("reach", episodes=2, noise=0.0, seed=0, root=root, cameras=("front",), image_size=32)
    assert summary["success_rate"] == 1.0
    reader = LeRobotReader(root)
    assert reader.num_episodes == 2 and reader.num_frames == summary["frames"]
    assert reader.state_names == list(STATE_NAMES) and reader.action_names == list(EE_SPACE_NAMES)
    ep = reader.episode(0, images=True)
    assert ep["done"][-1] and ep["reward"][-1] == 1.0 and not ep["done"][:-1].any()
    assert ep["images.front"].shape == (len(ep["state"]), 32, 32, 3)
    assert all(e["success"] for e in reader.episodes)


def test_environment_state_is_the_object_and_goal(tmp_path: Path):
    from robot_rl.data.collect_sim import collect_demos
    from robot_rl.core.state import ENVIRONMENT_STATE_NAMES, environment_vector, has_environment_state

    root = tmp_path / "lift"
    collect_demos("pick_lift", episodes=1, noise=0.0, seed=3, root=root, environment_state=True, max_steps=10)
    reader = LeRobotReader(root)
    assert has_environment_state(reader.state_names) and not has_environment_state(STATE_NAMES)
    first = reader.episode(0)["state"][0]
    cube, goal = first[len(STATE_NAMES):len(STATE_NAMES) + 3], first[-3:]
    np.testing.assert_allclose(goal - cube, [0.0, 0.0, 0.05], atol=1e-6)  # the goal sits 5 cm above the cube
    assert cube[2] > 0.0  # resting on the table
    no_object = environment_vector({"objects": {}, "goal": [0.4, 0.1, 0.3]})
    assert no_object.shape == (len(ENVIRONMENT_STATE_NAMES),)
    np.testing.assert_allclose(no_object, [0, 0, 0, 1, 0, 0, 0, 0.4, 0.1, 0.3])


def test_offline_demos_are_terminal_where_they_succeeded_whatever_their_last_reward(tmp_path: Path):
    """A relabelled dataset's shaped rewards can be positive at a failure's end and negative at a success's: the
    learner bootstraps by the recorded outcome, and by the last reward only where a dataset records none."""
    from policy_fixtures import tiny_sim_policy

    from robot_rl.core.state import ENVIRONMENT_STATE_NAMES
    from robot_rl.rl.offline import offline_episodes

    root = tmp_path / "shaped"
    with LeRobotWriter(root, 15, STATE_NAMES + ENVIRONMENT_STATE_NAMES, list(EE_SPACE_NAMES)) as writer:
        for last_reward, success in ((0.5, False), (-0.2, True), (1.0, None), (0.0, None)):
            for t in range(4):
                writer.add_frame(np.zeros(len(STATE_NAMES) + len(ENVIRONMENT_STATE_NAMES), np.float32),
                                 np.zeros(len(EE_SPACE_NAMES), np.float32), last_reward if t == 3 else 0.1, t == 3,
                                 False, task="reach")
            writer.save_episode(success=success)
    episodes = list(offline_episodes(str(root), tiny_sim_policy(0), step_penalty=0.0))
    assert [e.terminated for e in episodes] == [False, True, True, False]
