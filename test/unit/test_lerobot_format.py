"""What LeRobot 0.6.1 requires of a dataset, checked without LeRobot (scripts/lerobot_interop.sh checks it with it):
positive file sizes, timestamp = frame_index / fps, tasks.parquet indexed by the task string, quantiles in the
stats, AV1 video; and robot_rl's reader on a dataset laid out as LeRobot writes it (episodes sharing files)."""
from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robot_rl.data import lerobot
from robot_rl.data.lerobot import LeRobotReader, LeRobotWriter, make_features

FPS = 15
SHAPE = (32, 48, 3)
STATES, ACTIONS = ["s0", "s1", "s2"], ["a0", "a1"]
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def pattern(k: int) -> np.ndarray:
    """Frame k: gradients and a flat blue that change with k (neighbouring frames differ by 12+ levels)."""
    h, w, _ = SHAPE
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 126 // w + 20 * (k % 6), y * 140 // h + 10 * (k % 11), np.full_like(x, 20 + 37 * k % 200)],
                    -1).astype(np.uint8)


def assert_frames(frames: np.ndarray, first: int) -> None:
    """Each decoded frame is closest to the pattern it was encoded from (lossy codec: by a wide margin)."""
    for j, frame in enumerate(frames):
        errors = [np.abs(frame.astype(float) - pattern(k)).mean() for k in (first + j - 1, first + j, first + j + 1)]
        assert errors[1] < 8.0 and errors[1] < min(errors[0], errors[2]) / 2, (first + j, errors)


def record(writer: LeRobotWriter, length: int, seed: int, task: str, measured: bool = True) -> dict[str, np.ndarray]:
    """`length` frames; `measured`: with stamps on the 2 ms physics grid, as the recorder gets them."""
    rng = np.random.default_rng(seed)
    ep = {"state": rng.normal(size=(length, len(STATES))).astype(np.float32),
          "action": rng.normal(size=(length, len(ACTIONS))).astype(np.float32),
          "measured": np.round((7.3 + np.arange(length) / FPS) / 0.002) * 0.002 - round(7.3 / 0.002) * 0.002}
    for t in range(length):
        writer.add_frame(ep["state"][t], ep["action"][t], -0.01, t == length - 1, False,
                         {"front": pattern(t)} if writer.cameras else {}, task=task,
                         measured_timestamp=ep["measured"][t] if measured else None)
    writer.save_episode(success=True)
    return ep


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, list[dict[str, np.ndarray]]]:
    root = tmp_path / "ds"
    with LeRobotWriter(root, FPS, STATES, ACTIONS, ["front"], SHAPE) as writer:
        episodes = [record(writer, 13, 0, "reach"), record(writer, 7, 1, "push"), record(writer, 5, 2, "reach")]
    return root, episodes


def test_info_has_positive_file_sizes_and_av1_video(recorded):
    root, _ = recorded
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["data_files_size_in_mb"] > 0 and info["video_files_size_in_mb"] > 0
    video = info["features"]["observation.images.front"]["info"]
    assert video["video.codec"] == "av1" and video["video.pix_fmt"] == "yuv420p" and video["video.fps"] == FPS
    with av.open(str(LeRobotReader(root).video_path(0, "front"))) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name in ("av1", "libdav1d") and stream.frames == 13
        assert [round(frame.time * FPS, 6) for frame in container.decode(stream)] == list(range(13))


def test_timestamp_is_the_nominal_grid_and_the_measured_stamp_its_own_column(recorded):
    root, written = recorded
    reader = LeRobotReader(root)
    for i, ep in enumerate(written):
        got = reader.episode(i, images=True)
        n = len(ep["state"])
        np.testing.assert_array_equal(got["timestamp"], (got["frame_index"] / FPS).astype(np.float32))
        np.testing.assert_array_equal(got["frame_index"], np.arange(n))
        assert np.abs(got["timestamp"] - ep["measured"]).max() > 1e-4   # the 2 ms grid is not the nominal one
        np.testing.assert_array_equal(got["measured_timestamp"], ep["measured"])
        assert_frames(got["images.front"], 0)
    table = pq.read_table(reader.data_path(0))
    assert table.schema.field(lerobot.MEASURED_TIMESTAMP).type == pa.float64()
    assert table.schema.field("timestamp").type == pa.float32()


def test_tasks_parquet_is_indexed_by_the_task_string(recorded):
    root, _ = recorded
    table = pq.read_table(root / "meta" / "tasks.parquet")
    assert table.to_pydict() == {"task_index": [0, 1], "task": ["reach", "push"]}
    pandas_meta = json.loads(table.schema.metadata[b"pandas"])
    assert pandas_meta["index_columns"] == ["task"]
    assert [c["name"] for c in pandas_meta["columns"]] == ["task_index", "task"]
    assert LeRobotReader(root).tasks == ["reach", "push"]


def test_stats_hold_lerobots_quantiles(recorded):
    root, written = recorded
    stats = json.loads((root / "meta" / "stats.json").read_text())
    features = json.loads((root / "meta" / "info.json").read_text())["features"]
    assert set(stats) == set(features)
    for key, feature_stats in stats.items():
        assert set(feature_stats) == {"min", "max", "mean", "std", "count", *QUANTILES}, key
    counts = np.array([len(ep["action"]) for ep in written])
    actions = np.concatenate([ep["action"] for ep in written]).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats["action"]["std"], actions.std(0), rtol=1e-9)
    for name, q in QUANTILES.items():   # exact per episode, count-weighted across episodes (LeRobot's aggregate)
        per_episode = [np.quantile(ep["action"].astype(np.float64), q, axis=0, method="inverted_cdf")
                       for ep in written]
        np.testing.assert_allclose(stats["action"][name], np.average(per_episode, axis=0, weights=counts), rtol=1e-9)
    assert stats["action"]["q01"] != stats["action"]["q99"]
    image = stats["observation.images.front"]
    pixels = np.concatenate([[pattern(k) for k in range(len(ep["action"]))] for ep in written]).reshape(-1, 3) / 255
    np.testing.assert_allclose(np.ravel(image["mean"]), pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(image["std"]), pixels.std(0), rtol=1e-9)
    assert all(np.shape(image[name]) == (3, 1, 1) for name in ("min", "max", "mean", "std", *QUANTILES))
    assert image["count"] == [int(counts.sum())]
    # per-episode stats in meta/episodes, as LeRobot writes them
    row = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-001.parquet").to_pylist()[0]
    assert row["episode_index"] == 1 and row["stats/action/count"] == [7]
    np.testing.assert_allclose(row["stats/action/q50"], np.quantile(written[1]["action"].astype(np.float64), 0.5,
                                                                     axis=0, method="inverted_cdf"))


def write_shared_files_dataset(root: Path, lengths: tuple[int, ...]) -> None:
    """Episodes laid out as LeRobot's own writer lays them out: all in one data file, one video file (AV1 through
    PyAV, one continuous stream) and one episodes file, with per-episode offsets into the video."""
    features = make_features(FPS, STATES, ACTIONS, ["front"], SHAPE, measured_timestamps=True)
    video = root / lerobot.VIDEO_PATH.format(video_key="observation.images.front", chunk_index=0, file_index=0)
    video.parent.mkdir(parents=True)
    priority = lerobot.NormalPriority()   # SVT-AV1 as root would leave this test process real-time
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libsvtav1", rate=Fraction(FPS), options={"g": "2", "crf": "30", "preset": "12"})
        stream.height, stream.width, stream.pix_fmt = SHAPE[0], SHAPE[1], "yuv420p"
        for length in lengths:
            for k in range(length):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(pattern(k), format="rgb24")))
        container.mux(stream.encode(None))
    priority.restore()
    n = sum(lengths)
    episode_index = np.repeat(np.arange(len(lengths)), lengths)
    frame_index = np.concatenate([np.arange(length) for length in lengths])
    rng = np.random.default_rng(5)
    columns = {"observation.state": rng.normal(size=(n, 3)).astype(np.float32),
               "action": rng.normal(size=(n, 2)).astype(np.float32), "next.reward": np.zeros(n, np.float32),
               "next.done": frame_index == np.repeat(lengths, lengths) - 1, lerobot.INTERVENTION: np.zeros(n, bool),
               lerobot.MEASURED_TIMESTAMP: frame_index / FPS, "timestamp": (frame_index / FPS).astype(np.float32),
               "frame_index": frame_index, "episode_index": episode_index, "index": np.arange(n),
               "task_index": np.zeros(n, np.int64)}
    data = root / lerobot.DATA_PATH.format(chunk_index=0, file_index=0)
    data.parent.mkdir(parents=True)
    pq.write_table(pa.table({k: pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
                             if v.ndim == 2 else pa.array(v) for k, v in columns.items()}), data)
    starts = np.cumsum((0, *lengths))
    rows = [{"episode_index": i, "tasks": ["reach"], "length": length, "data/chunk_index": 0, "data/file_index": 0,
             "dataset_from_index": int(starts[i]), "dataset_to_index": int(starts[i + 1]),
             "videos/observation.images.front/chunk_index": 0, "videos/observation.images.front/file_index": 0,
             "videos/observation.images.front/from_timestamp": starts[i] / FPS,
             "videos/observation.images.front/to_timestamp": starts[i + 1] / FPS,
             "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0} for i, length in enumerate(lengths)]
    episodes = root / lerobot.EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), episodes)
    pq.write_table(lerobot._tasks_table(["reach"]), root / lerobot.TASKS_PATH)
    info = {"codebase_version": "v3.0", "robot_type": "panda", "fps": FPS, "total_episodes": len(lengths),
            "total_frames": n, "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "data_path": lerobot.DATA_PATH, "video_path": lerobot.VIDEO_PATH,
            "features": features, "splits": {}}
    (root / "meta" / "info.json").write_text(json.dumps(info))


def test_reader_decodes_episodes_sharing_one_av1_file(tmp_path: Path):
    root = tmp_path / "shared"
    write_shared_files_dataset(root, (9, 12, 6))
    reader = LeRobotReader(root)
    assert reader.num_episodes == 3 and reader.data_path(1) == reader.data_path(2)
    for i, length in enumerate((9, 12, 6)):
        ep = reader.episode(i, images=True)
        assert ep["images.front"].shape == (length, *SHAPE)
        assert_frames(ep["images.front"], 0)   # seeks to the episode's first frame, mid-file


def test_writer_resumes_after_episodes_sharing_files(tmp_path: Path):
    root = tmp_path / "shared"
    write_shared_files_dataset(root, (9, 12))
    with LeRobotWriter(root, FPS, STATES, ACTIONS, ["front"], SHAPE) as writer:
        record(writer, 6, 3, "push")
    reader = LeRobotReader(root)
    assert reader.num_episodes == 3 and reader.tasks == ["reach", "push"]
    last = reader.episodes[2]
    assert (last["data/file_index"], last["videos/observation.images.front/file_index"],
            last["meta/episodes/file_index"]) == (1, 1, 1)   # the files after the shared ones, nothing overwritten
    assert reader.episode(0)["state"].shape == (9, 3) and reader.episode(2)["index"].tolist() == list(range(21, 27))
    assert_frames(reader.episode(2, images=True)["images.front"], 0)


def test_a_save_that_dies_before_info_json_leaves_nothing_behind(recorded, monkeypatch):
    root, _ = recorded
    writer = LeRobotWriter(root, FPS, STATES, ACTIONS, ["front"], SHAPE)
    monkeypatch.setattr(LeRobotWriter, "_write_meta", lambda self: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        record(writer, 4, 9, "reach")
    monkeypatch.undo()
    assert (root / "data" / "chunk-000" / "file-003.parquet").exists()   # committed files of an uncommitted episode
    assert LeRobotReader(root).num_episodes == 3
    LeRobotWriter(root, FPS, STATES, ACTIONS, ["front"], SHAPE).finalize()   # reopening removes them
    names = {p.name for folder in ("data", "meta/episodes", "videos") for p in (root / folder).rglob("file-*")}
    assert names == {"file-000.parquet", "file-001.parquet", "file-002.parquet", "file-000.mp4", "file-001.mp4",
                     "file-002.mp4"}


def test_the_first_frame_decides_whether_the_dataset_keeps_measured_timestamps(tmp_path: Path):
    with LeRobotWriter(tmp_path / "stamped", FPS, STATES, ACTIONS) as writer:
        writer.add_frame(np.zeros(3), np.zeros(2), 0.0, False, False, measured_timestamp=0.0)
        with pytest.raises(ValueError, match="keeps measured timestamps"):
            writer.add_frame(np.zeros(3), np.zeros(2), 0.0, False, False)
        writer.discard_episode()
        record(writer, 3, 0, "reach", measured=False)   # nothing committed yet: this first frame decides again
    assert "measured_timestamp" not in LeRobotReader(tmp_path / "stamped").episode(0)
    with LeRobotWriter(tmp_path / "stamped", FPS, STATES, ACTIONS) as writer:   # resumed: the dataset decides
        with pytest.raises(ValueError, match="has no column for measured timestamps"):
            writer.add_frame(np.zeros(3), np.zeros(2), 0.0, False, False, measured_timestamp=0.0)
        record(writer, 2, 1, "reach", measured=False)
    assert LeRobotReader(tmp_path / "stamped").num_episodes == 2


def test_video_encoding_leaves_no_thread_real_time(tmp_path: Path):
    """SVT-AV1 run as root (containers, CI) makes the thread that opens the encoder and its workers SCHED_FIFO 99;
    the writer must hand them back to the normal scheduler, or encoding would preempt a robot's control loop (and a
    test process would pass real-time priority to every node it starts). As another user this holds trivially."""
    def realtime_threads():
        return {t for t in os.listdir("/proc/self/task") if os.sched_getscheduler(int(t)) != os.SCHED_OTHER}

    before = realtime_threads()
    writer = LeRobotWriter(tmp_path / "ds", FPS, STATES, ACTIONS, cameras=["front"], image_shape=SHAPE)
    for k in range(5):
        writer.add_frame(np.zeros(len(STATES)), np.zeros(len(ACTIONS)), 0.0, False, False,
                         images={"front": pattern(k)})
        assert realtime_threads() <= before, "encoder threads left real-time while the episode records"
    writer.save_episode()
    assert realtime_threads() <= before


@pytest.mark.parametrize("layout", ["own files", "shared files"])
def test_a_relabelled_copy_changes_the_rewards_and_their_statistics_only(recorded, tmp_path: Path, layout):
    if layout == "own files":
        src, _ = recorded
    else:
        src = tmp_path / "shared"
        write_shared_files_dataset(src, (9, 12, 6))
    before = LeRobotReader(src)
    lengths = [ep["length"] for ep in before.episodes]
    rewards = [np.arange(n, dtype=np.float32) * (i + 1) - 3.0 for i, n in enumerate(lengths)]
    copy = lerobot.copy_with_rewards(src, tmp_path / "relabelled", rewards)
    source = LeRobotReader(src)
    for i in range(len(lengths)):
        new, old = copy.episode(i, images=True), source.episode(i, images=True)
        np.testing.assert_array_equal(new["reward"], rewards[i])
        assert not np.array_equal(old["reward"], rewards[i])            # the source keeps what it recorded
        for key in old:
            if key != "reward":
                np.testing.assert_array_equal(new[key], old[key], err_msg=key)
    pooled = np.concatenate(rewards).astype(np.float64)
    if layout == "own files":
        stats = json.loads((tmp_path / "relabelled" / lerobot.STATS_PATH).read_text())
        assert stats[lerobot.REWARD]["mean"] == pytest.approx([pooled.mean()])
        assert stats[lerobot.REWARD]["std"] == pytest.approx([pooled.std()])
        assert (stats[lerobot.REWARD]["min"], stats[lerobot.REWARD]["max"]) == ([pooled.min()], [pooled.max()])
        assert stats["action"] == json.loads((src / lerobot.STATS_PATH).read_text())["action"]
        row = pq.read_table(tmp_path / "relabelled" / lerobot.EPISODES_PATH.format(chunk_index=0, file_index=1)
                            ).to_pylist()[0]
        assert row[f"stats/{lerobot.REWARD}/mean"] == pytest.approx([rewards[1].mean()])
    with pytest.raises(FileExistsError, match="relabelled"):
        lerobot.copy_with_rewards(src, tmp_path / "relabelled", rewards)
    with pytest.raises(lerobot.DatasetError, match="rewards given for"):
        lerobot.copy_with_rewards(src, tmp_path / "short", [r[:-1] for r in rewards])
    assert not (tmp_path / "short").exists()
