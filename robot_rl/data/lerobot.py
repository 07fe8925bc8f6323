"""LeRobot v3.0 datasets: a crash-safe streaming writer and a validating reader (numpy, pyarrow, PyAV).

Layout under `root`:
    meta/info.json, meta/stats.json, meta/tasks.parquet, meta/episodes/chunk-CCC/file-FFF.parquet
    data/chunk-CCC/file-FFF.parquet, videos/observation.images.<cam>/chunk-CCC/file-FFF.mp4
What LeRobot (0.6.1, `LeRobotDataset`) requires, and this writer keeps: `timestamp` = frame_index / fps exactly
(LeRobot looks video frames up at that time, within 0.1 ms), positive file sizes in info.json, tasks.parquet indexed
by the task string, min / max / mean / std / count and the quantiles q01..q99 in stats.json and per episode, and
videos in AV1 with LeRobot's default encoder settings (PyAV / SVT-AV1), so LeRobot's own writer can resume the
dataset. A time measured on the robot's clock goes into its own column, `complementary_info.measured_timestamp`.

The writer gives every episode its own data, video and episodes-metadata files (the next file after the last
episode's, so datasets LeRobot appended to, which share files between episodes, can be resumed too). Readers locate
frames through the chunk/file indices stored per episode in meta/episodes, as v3 specifies.

Durability: an episode's files are written under temporary names and renamed into place once complete, then the
meta files are rewritten atomically, info.json last: info.json's totals are the commit record. A crash loses at
most the episode being recorded; reopening the root with a writer removes its leftovers and appends to what was
committed.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_rl.core.types import holding_action

logger = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
# LeRobot's defaults (it rolls its own writes over at these sizes; every episode of this writer has its own files)
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
# LeRobot's default video encoding (RGBEncoderConfig): AV1 through SVT-AV1, GOP 2, CRF 30, preset 12, yuv420p.
VIDEO_ENCODER = {"g": 2, "crf": 30, "preset": 12, "fast_decode": 0}
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}   # LeRobot's DEFAULT_QUANTILES

STATE = "observation.state"
ACTION = "action"
REWARD = "next.reward"
DONE = "next.done"
INTERVENTION = "complementary_info.is_intervention"
MEASURED_TIMESTAMP = "complementary_info.measured_timestamp"
IMAGE_PREFIX = "observation.images."
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
REQUIRED_INFO_KEYS = ("codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks",
                      "chunks_size", "data_path")


class DatasetError(ValueError):
    """A dataset on disk is malformed or inconsistent (or an episode could not be written faithfully)."""


# ---- small helpers -----------------------------------------------------------------------------------------------
def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, final: Path) -> None:
    """Flush `tmp` to disk, rename it onto `final` and persist the rename."""
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(final.parent)


def _write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    _commit(tmp, path)


def _write_json(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    _commit(tmp, path)


def _tasks_table(tasks: Sequence[str]) -> pa.Table:
    """tasks.parquet as pandas writes a frame indexed by the task string (LeRobot reads it with pandas and looks
    tasks up by that index; without the pandas metadata the index would be the row number)."""
    columns = [{"name": name, "field_name": name, "pandas_type": pandas_type, "numpy_type": numpy_type,
                "metadata": None}
               for name, pandas_type, numpy_type in (("task_index", "int64", "int64"), ("task", "unicode", "object"))]
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas_meta = {"index_columns": ["task"], "column_indexes": [], "columns": columns}
    return table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})


def _fixed_list(values: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _vector(table: pa.Table, name: str) -> np.ndarray:
    """(N, D) array from a list / fixed-size-list column, (N, 1) from a scalar column."""
    col = table.column(name).combine_chunks()
    if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
        return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)
    return col.to_numpy(zero_copy_only=False).reshape(len(col), 1)


def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    """The file after (chunk, file), as LeRobot numbers them."""
    return (chunk + 1, 0) if file + 1 >= chunks_size else (chunk, file + 1)


def _video_frame_count(path: Path) -> int:
    """Frame count from the mp4 container (the sample table the muxer wrote); -1 when missing or unreadable."""
    try:
        with av.open(str(path)) as container:
            return container.streams.video[0].frames
    except (av.error.FFmpegError, IndexError):
        return -1


def _read_video(path: Path, start: int, count: int, fps: float) -> np.ndarray:
    """(count, H, W, 3) uint8 RGB frames from frame `start` (time start / fps): seek to the keyframe before it, then
    decode; frames are identified by their presentation time, so a gap in the file is an error, not a shift."""
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if start:
            container.seek(int(start / fps / stream.time_base), stream=stream)
        for frame in container.decode(stream):
            index = round(frame.time * fps)
            if index < start:
                continue
            if index != start + len(frames):
                raise DatasetError(f"{path}: frame {start + len(frames)} missing (next decoded frame is {index})")
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                return np.stack(frames)
    raise DatasetError(f"{path}: decoded {len(frames)} frames from frame {start}, expected {count}")


def _realtime_threads() -> set[int]:
    """The threads of this process that run under a real-time scheduling policy."""
    tids = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            if os.sched_getscheduler(int(tid)) in (os.SCHED_FIFO, os.SCHED_RR):
                tids.add(int(tid))
        except OSError:   # the thread has just ended
            pass
    return tids


class NormalPriority:
    """SVT-AV1 run as root (a container, CI) moves the thread that opens the encoder and its ~40 worker threads to
    SCHED_FIFO 99: on a robot PC that puts video encoding above the arm's control loop, and in a test process every
    child inherits it. `restore()` moves every thread that became real-time since this object was made back to
    SCHED_OTHER."""

    def __init__(self):
        self.before = _realtime_threads()

    def restore(self) -> None:
        for tid in _realtime_threads() - self.before:
            try:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            except OSError:   # ended meanwhile
                pass


class _VideoEncoder:
    """One camera's episode video, encoded as frames arrive: AV1 with LeRobot's default settings, frame k at k/fps."""

    def __init__(self, path: Path, fps: float, image_shape: tuple[int, int, int]):
        os.environ.setdefault("SVT_LOG", "1")   # SVT-AV1 prints a banner and notes per video otherwise; errors stay
        self.priority, self.started = NormalPriority(), False
        self.path = path
        self.container = av.open(str(path), "w", format="mp4")
        options = {"g": str(VIDEO_ENCODER["g"]), "crf": str(VIDEO_ENCODER["crf"]),
                   "preset": str(VIDEO_ENCODER["preset"]), "svtav1-params": f"fast-decode={VIDEO_ENCODER['fast_decode']}"}
        self.stream = self.container.add_stream("libsvtav1", rate=Fraction(fps).limit_denominator(1001),
                                                options=options)
        self.stream.height, self.stream.width = image_shape[:2]
        self.stream.pix_fmt = "yuv420p"

    def write(self, image: np.ndarray) -> None:
        try:
            self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        except av.error.FFmpegError as err:   # a full disk, an I/O error
            raise DatasetError(f"{self.path}: encoding failed ({err})") from err
        if not self.started:   # the first frame opened the encoder and started its threads
            self.started = True
            self.priority.restore()

    def close(self) -> None:
        """Flush the encoder and write the container's index."""
        try:
            self.container.mux(self.stream.encode(None))
            self.container.close()
        except av.error.FFmpegError as err:
            raise DatasetError(f"{self.path}: finishing the video failed ({err})") from err
        finally:
            self.priority.restore()


def _vector_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics of the rows of x (N, D); the quantiles are exact ("inverted CDF", which
    LeRobot's histogram estimate approximates)."""
    x = x.astype(np.float64)
    stats = {"min": x.min(axis=0), "max": x.max(axis=0), "mean": x.mean(axis=0), "std": x.std(axis=0),
             "count": np.array([len(x)])}
    for key, q in QUANTILES.items():
        stats[key] = np.quantile(x, q, axis=0, method="inverted_cdf")
    return stats


def _image_stats(histogram: np.ndarray, frames: int) -> dict[str, np.ndarray]:
    """LeRobot's per-channel statistics of an episode's pixels in [0, 1], shaped (3, 1, 1), counted in frames, from
    the per-channel histogram (3, 256) of their uint8 values (so exact, quantiles included)."""
    levels = np.arange(256) / 255.0
    total = histogram.sum(axis=1, keepdims=True)
    mean = (histogram * levels).sum(axis=1) / total[:, 0]
    variance = (histogram * (levels - mean[:, None]) ** 2).sum(axis=1) / total[:, 0]
    seen = histogram > 0
    stats = {"min": levels[seen.argmax(axis=1)], "max": levels[255 - seen[:, ::-1].argmax(axis=1)], "mean": mean,
             "std": np.sqrt(variance)}
    cumulative = histogram.cumsum(axis=1)
    for key, q in QUANTILES.items():
        target = np.maximum(np.ceil(q * total[:, 0]), 1)
        stats[key] = levels[[np.searchsorted(row, t) for row, t in zip(cumulative, target)]]
    return {**{k: v.reshape(-1, 1, 1) for k, v in stats.items()}, "count": np.array([frames])}


def _aggregate_stats(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """LeRobot's aggregate_stats for one feature: pooled mean and std, count-weighted quantiles (a quantile only
    where every part has it)."""
    counts = np.array([p["count"][0] for p in parts], dtype=np.float64)
    weights = (counts / counts.sum()).reshape(-1, *[1] * np.ndim(parts[0]["mean"]))
    means = np.stack([p["mean"] for p in parts])
    mean = (weights * means).sum(axis=0)
    variance = (weights * (np.stack([p["std"] for p in parts]) ** 2 + (means - mean) ** 2)).sum(axis=0)
    out = {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
           "mean": mean, "std": np.sqrt(variance), "count": np.array([int(counts.sum())])}
    for key in QUANTILES:
        if all(key in p for p in parts):
            out[key] = (weights * np.stack([p[key] for p in parts])).sum(axis=0)
    return out


def _stats_to_json(stats: dict[str, np.ndarray]) -> dict[str, list]:
    return {k: np.asarray(v).tolist() for k, v in stats.items()}


def make_features(fps: float, state_names: Sequence[str], action_names: Sequence[str], cameras: Sequence[str] = (),
                  image_shape: tuple[int, int, int] = (64, 64, 3), measured_timestamps: bool = False
                  ) -> dict[str, dict]:
    """The `features` block of info.json: dtype, shape and names of every per-frame field (video `info` as
    LeRobot writes it for its default encoder)."""
    features: dict[str, dict] = {
        STATE: {"dtype": "float32", "shape": [len(state_names)], "names": list(state_names)},
        ACTION: {"dtype": "float32", "shape": [len(action_names)], "names": list(action_names)},
        REWARD: {"dtype": "float32", "shape": [1], "names": None},
        DONE: {"dtype": "bool", "shape": [1], "names": None},
        INTERVENTION: {"dtype": "bool", "shape": [1], "names": None},
    }
    if measured_timestamps:
        features[MEASURED_TIMESTAMP] = {"dtype": "float64", "shape": [1], "names": None}
    height, width, channels = image_shape
    video_fps = int(fps) if float(fps).is_integer() else float(fps)
    for cam in cameras:
        features[IMAGE_PREFIX + cam] = {
            "dtype": "video", "shape": [height, width, channels], "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": "av1", "video.pix_fmt": "yuv420p",
                     "video.fps": video_fps, "video.channels": channels, "has_audio": False,
                     **{f"video.{k}": v for k, v in VIDEO_ENCODER.items()}, "video.video_backend": "pyav",
                     "video.extra_options": {}, "is_depth_map": False}}
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for name in INDEX_FEATURES[1:]:
        features[name] = {"dtype": "int64", "shape": [1], "names": None}
    return features


# ---- reader ------------------------------------------------------------------------------------------------------
def _load_info(path: Path) -> dict[str, Any]:
    """info.json, validated: clear errors naming the file and the offending key."""
    if not path.is_file():
        raise DatasetError(f"{path}: not found (not a LeRobot dataset root?)")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(info, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    for key in REQUIRED_INFO_KEYS:
        if key not in info:
            raise DatasetError(f"{path}: missing key '{key}'")
    if info["codebase_version"] != CODEBASE_VERSION:
        raise DatasetError(f"{path}: key 'codebase_version' is {info['codebase_version']!r}, "
                           f"expected {CODEBASE_VERSION!r}")
    if not isinstance(info["fps"], (int, float)) or info["fps"] <= 0:
        raise DatasetError(f"{path}: key 'fps' must be a positive number, got {info['fps']!r}")
    for key in ("total_episodes", "total_frames", "total_tasks", "chunks_size"):
        if not isinstance(info[key], int) or info[key] < 0:
            raise DatasetError(f"{path}: key '{key}' must be a non-negative integer, got {info[key]!r}")
    features = info["features"]
    if not isinstance(features, dict):
        raise DatasetError(f"{path}: key 'features' must be an object")
    for name in (STATE, ACTION, *INDEX_FEATURES):
        if name not in features:
            raise DatasetError(f"{path}: missing key 'features.{name}'")
    for name, spec in features.items():
        for field in ("dtype", "shape"):
            if not isinstance(spec, dict) or field not in spec:
                raise DatasetError(f"{path}: missing key 'features.{name}.{field}'")
        if not isinstance(spec["shape"], list) or not all(isinstance(s, int) for s in spec["shape"]):
            raise DatasetError(f"{path}: key 'features.{name}.shape' must be a list of integers")
        names = spec.get("names")
        if name in (STATE, ACTION) and names is not None and len(names) != spec["shape"][0]:
            raise DatasetError(f"{path}: key 'features.{name}.names' has {len(names)} entries for shape "
                               f"{spec['shape']}")
        if spec["dtype"] == "video" and "video_path" not in info:
            raise DatasetError(f"{path}: missing key 'video_path' (feature {name} is a video)")
    return info


class LeRobotReader:
    """Read-only view of a LeRobot v3.0 dataset (this writer's or LeRobot's); validates metadata, parquet row counts
    and video frame counts."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.info = _load_info(self.root / INFO_PATH)
        self.episodes = self._load_episodes()
        self.tasks = self._load_tasks()
        stats_path = self.root / STATS_PATH
        self.stats: dict[str, dict[str, list]] = json.loads(stats_path.read_text()) if stats_path.exists() else {}
        self._check_files()

    # -- metadata
    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def features(self) -> dict[str, dict]:
        return self.info["features"]

    @property
    def state_names(self) -> list[str]:
        return list(self.features[STATE].get("names") or [])

    @property
    def action_names(self) -> list[str]:
        return list(self.features[ACTION].get("names") or [])

    @property
    def cameras(self) -> list[str]:
        return [k[len(IMAGE_PREFIX):] for k, v in self.features.items()
                if k.startswith(IMAGE_PREFIX) and v["dtype"] == "video"]

    def _load_episodes(self) -> list[dict[str, Any]]:
        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        # per-episode stats stay on disk: nothing here reads them, and they are most of each row
        rows = [row for f in files
                for row in pq.read_table(f, columns=[c for c in pq.read_schema(f).names
                                                     if not c.startswith("stats/")]).to_pylist()]
        total = self.info["total_episodes"]
        # info.json is written last: rows past its total belong to an episode whose save did not complete.
        rows = sorted((r for r in rows if r["episode_index"] < total), key=lambda r: r["episode_index"])
        if [r["episode_index"] for r in rows] != list(range(total)):
            raise DatasetError(f"{self.root / 'meta' / 'episodes'}: episodes 0..{total - 1} expected "
                               f"(info.json total_episodes), found {[r['episode_index'] for r in rows]}")
        frames = sum(r["length"] for r in rows)
        if frames != self.info["total_frames"]:
            raise DatasetError(f"{self.root / INFO_PATH}: key 'total_frames' is {self.info['total_frames']} but "
                               f"the episodes metadata holds {frames} frames")
        return rows

    def _load_tasks(self) -> list[str]:
        path = self.root / TASKS_PATH
        if not path.exists():
            return []
        table = pq.read_table(path).to_pydict()
        return [task for _, task in sorted(zip(table["task_index"], table["task"]))]

    def data_path(self, i: int) -> Path:
        ep = self.episodes[i]
        return self.root / self.info["data_path"].format(chunk_index=ep["data/chunk_index"],
                                                         file_index=ep["data/file_index"])

    def video_path(self, i: int, camera: str) -> Path:
        ep, key = self.episodes[i], IMAGE_PREFIX + camera
        return self.root / self.info["video_path"].format(video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"],
                                                          file_index=ep[f"videos/{key}/file_index"])

    def _video_span(self, i: int, camera: str) -> tuple[int, int]:
        """First frame and end frame (exclusive) of episode i inside its video file."""
        ep, key = self.episodes[i], IMAGE_PREFIX + camera
        return round(ep[f"videos/{key}/from_timestamp"] * self.fps), round(ep[f"videos/{key}/to_timestamp"] * self.fps)

    def _check_files(self) -> None:
        """Every data file holds exactly its episodes' rows and every video file exactly their frames."""
        expected_rows: dict[Path, int] = {}
        for i, ep in enumerate(self.episodes):
            path = self.data_path(i)
            expected_rows[path] = expected_rows.get(path, 0) + ep["length"]
        for path, rows in expected_rows.items():
            if not path.is_file():
                raise DatasetError(f"{path}: data file missing")
            found = pq.ParquetFile(path).metadata.num_rows
            if found != rows:
                raise DatasetError(f"{path}: {found} parquet rows, the episodes metadata expects {rows}")
        for camera in self.cameras:
            expected_frames: dict[Path, int] = {}
            for i, ep in enumerate(self.episodes):
                start, end = self._video_span(i, camera)
                if end - start != ep["length"]:
                    raise DatasetError(f"{self.root / 'meta' / 'episodes'}: episode {i} spans {end - start} frames "
                                       f"of {camera} video but has {ep['length']} parquet rows")
                path = self.video_path(i, camera)
                expected_frames[path] = max(expected_frames.get(path, 0), end)
            for path, frames in expected_frames.items():
                found = _video_frame_count(path)
                if found != frames:
                    raise DatasetError(f"{path}: {found} video frames (-1: missing or unreadable) but the parquet "
                                       f"rows expect {frames}")

    # -- frames
    def episode(self, i: int, images: bool = False) -> dict[str, np.ndarray]:
        """Episode i as arrays: state (T, S), action (T, A), reward, done, is_intervention, timestamp,
        frame_index, index, task_index (T,), measured_timestamp (T,) where the dataset has it, plus
        `images.<cam>` (T, H, W, 3) uint8 RGB when `images`."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range (dataset has {self.num_episodes})")
        path = self.data_path(i)
        table = pq.read_table(path, filters=[("episode_index", "=", i)])
        n = self.episodes[i]["length"]
        if table.num_rows != n:
            raise DatasetError(f"{path}: {table.num_rows} rows for episode {i}, expected {n}")
        columns = table.column_names
        out = {"state": _vector(table, STATE).astype(np.float32), "action": _vector(table, ACTION).astype(np.float32)}
        frame_index = _vector(table, "frame_index")[:, 0]
        # Teleop-only LeRobot datasets have no RL fields: zero reward, done on the last frame, no interventions.
        out["reward"] = (_vector(table, REWARD)[:, 0].astype(np.float32) if REWARD in columns
                         else np.zeros(n, np.float32))
        out["done"] = _vector(table, DONE)[:, 0].astype(bool) if DONE in columns else frame_index == n - 1
        out["is_intervention"] = (_vector(table, INTERVENTION)[:, 0].astype(bool) if INTERVENTION in columns
                                  else np.zeros(n, bool))
        out["timestamp"] = _vector(table, "timestamp")[:, 0].astype(np.float32)
        if MEASURED_TIMESTAMP in columns:
            out["measured_timestamp"] = _vector(table, MEASURED_TIMESTAMP)[:, 0].astype(np.float64)
        out["frame_index"] = frame_index.astype(np.int64)
        for name in ("index", "task_index"):
            out[name] = _vector(table, name)[:, 0].astype(np.int64)
        if images:
            for camera in self.cameras:
                start, _ = self._video_span(i, camera)
                out[f"images.{camera}"] = _read_video(self.video_path(i, camera), start, n, self.fps)
        return out

    def succeeded(self, i: int, rewards: np.ndarray) -> bool:
        """Episode i's outcome: `success` in the episodes metadata (this writer and the recorder set it), else, in
        datasets without it, whether its last reward is positive (rewards recorded as 1[success]). A relabelled
        dataset's shaped rewards say nothing about success; its metadata does."""
        success = self.episodes[i].get("success")
        return bool(rewards[-1] > 0) if success is None else bool(success)

    def frames(self, images: bool = False) -> Iterator[dict[str, Any]]:
        """Every frame in order, as dicts with the keys of `episode()` plus `episode_index`."""
        for i in range(self.num_episodes):
            ep = self.episode(i, images)
            for t in range(self.episodes[i]["length"]):
                yield {"episode_index": i, **{k: v[t] for k, v in ep.items()}}


def copy_with_rewards(src: str | Path, dst: str | Path, rewards: Sequence[np.ndarray]) -> LeRobotReader:
    """A copy of the dataset at `src` whose `next.reward` is `rewards` (one array per episode), its statistics
    (per episode and in stats.json) recomputed. Datasets are not edited in place: the recorded rewards stay in `src`.
    The copy appears at `dst` only once complete."""
    reader, dst = LeRobotReader(src), Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst}: exists; a relabelled dataset goes into a new directory")
    if REWARD not in reader.features:
        raise DatasetError(f"{reader.root}: no {REWARD!r} feature to relabel")
    lengths = [ep["length"] for ep in reader.episodes]
    if [len(r) for r in rewards] != lengths:
        raise DatasetError(f"{reader.root}: episodes of {lengths} frames, rewards given for "
                           f"{[len(r) for r in rewards]}")
    rewards = [np.asarray(r, np.float32) for r in rewards]
    partial_dst = dst.with_name(dst.name + ".partial")
    shutil.rmtree(partial_dst, ignore_errors=True)
    shutil.copytree(reader.root, partial_dst)
    for path in sorted((partial_dst / "data").glob("chunk-*/file-*.parquet")):
        table = pq.read_table(path)
        episode, frame = (table.column(c).to_numpy() for c in ("episode_index", "frame_index"))
        column = np.array([rewards[e][f] for e, f in zip(episode, frame)], np.float32)
        field = table.schema.field(REWARD)
        _write_parquet(table.set_column(table.schema.get_field_index(REWARD), field,
                                        pa.array(column, field.type)), path)
    episode_stats = [_vector_stats(r.reshape(-1, 1)) for r in rewards]
    for path in sorted((partial_dst / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        table = pq.read_table(path)
        rows = table.column("episode_index").to_pylist()
        for name in episode_stats[0]:
            key = f"stats/{REWARD}/{name}"
            if key in table.column_names:
                field, old = table.schema.field(key), table.column(key).to_pylist()
                # rows past the committed episodes (an interrupted save) keep what they had
                values = pa.array([episode_stats[i][name].tolist() if i < len(episode_stats) else old[j]
                                   for j, i in enumerate(rows)], field.type)
                table = table.set_column(table.schema.get_field_index(key), field, values)
        _write_parquet(table, path)
    if (partial_dst / STATS_PATH).exists():   # LeRobot computes it when absent
        stats = json.loads((partial_dst / STATS_PATH).read_text())
        stats[REWARD] = _stats_to_json(_aggregate_stats(episode_stats))
        _write_json(stats, partial_dst / STATS_PATH)
    os.replace(partial_dst, dst)
    return LeRobotReader(dst)


# ---- writer ------------------------------------------------------------------------------------------------------
class LeRobotWriter:
    """Streams frames into a LeRobot v3.0 dataset: video encoded as frames arrive, one atomic commit per episode.

    Opening an existing root resumes it (same fps and features required); new episodes are appended.
    A dataset whose first frame brings `measured_timestamp` keeps each frame's time on the robot's clock
    (MEASURED_TIMESTAMP) and needs it on every frame; one whose first frame has none has no such column.
    """

    def __init__(self, root: str | Path, fps: float, state_names: Sequence[str], action_names: Sequence[str],
                 cameras: Sequence[str] = (), image_shape: tuple[int, int, int] = (64, 64, 3),
                 robot_type: str = "panda"):
        self.root = Path(root)
        self.fps = float(fps)
        self.cameras = tuple(cameras)
        self.image_shape = tuple(image_shape)
        if self.cameras and self.image_shape[2] != 3:
            raise ValueError(f"image_shape {self.image_shape}: camera videos are RGB, 3 channels")
        self.state_dim, self.action_dim = len(state_names), len(action_names)
        self._features = partial(make_features, self.fps, state_names, action_names, self.cameras, image_shape)
        # whether frames bring a measured timestamp: the dataset's, once its first frame has said
        self.measured_timestamps: bool | None = None
        if (self.root / INFO_PATH).exists():
            self._remove_partial_files()
            reader = LeRobotReader(self.root)
            self.measured_timestamps = MEASURED_TIMESTAMP in reader.features
            if reader.fps != self.fps or reader.features != self._features(self.measured_timestamps):
                raise DatasetError(f"{self.root / INFO_PATH}: existing dataset has fps {reader.fps} and features "
                                   f"{sorted(reader.features)}; cannot append fps {self.fps} with different features")
            self._remove_uncommitted_files(reader)
            self.info, self._tasks = reader.info, reader.tasks
            self._stats = {key: {k: np.asarray(v) for k, v in stats.items()} for key, stats in reader.stats.items()}
            last = reader.episodes[-1] if reader.episodes else None
        else:
            self.info = {
                "codebase_version": CODEBASE_VERSION, "robot_type": robot_type,
                "fps": int(self.fps) if self.fps.is_integer() else self.fps,
                "total_episodes": 0, "total_frames": 0, "total_tasks": 0, "chunks_size": CHUNKS_SIZE,
                "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB, "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
                "data_path": DATA_PATH, "video_path": VIDEO_PATH if self.cameras else None,
                "features": self._features(False), "splits": {},
            }
            self._tasks, self._stats, last = [], {}, None
        # where the next episode's files go, per kind: the file after the last episode's
        kinds = ["data", "meta/episodes", *(f"videos/{IMAGE_PREFIX}{camera}" for camera in self.cameras)]
        self._next_files = {kind: (0, 0) if last is None else
                            _next_file(last[f"{kind}/chunk_index"], last[f"{kind}/file_index"], self.info["chunks_size"])
                            for kind in kinds}
        self._frames: dict[str, list] = {}
        self._videos: dict[str, tuple[_VideoEncoder, Path]] = {}   # camera -> (encoder writing the partial, final)
        self._image_histograms: dict[str, np.ndarray] = {}          # camera -> (3, 256) pixel counts this episode
        self._closed = False
        self._reset_episode()

    @property
    def num_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def pending_frames(self) -> int:
        return len(self._frames["state"])

    def _remove_partial_files(self) -> None:
        """Leftovers of an episode that was being written when the previous writer died."""
        for pattern in ("*.partial.mp4", "*.tmp"):
            for path in self.root.rglob(pattern):
                path.unlink()

    def _remove_uncommitted_files(self, reader: LeRobotReader) -> None:
        """Data, video and episodes files that no committed episode uses: a save that died before info.json.
        LeRobot reads every parquet file under data/ and meta/episodes/, so they would not stay harmless."""
        used = {reader.data_path(i) for i in range(reader.num_episodes)}
        used |= {reader.video_path(i, camera) for i in range(reader.num_episodes) for camera in reader.cameras}
        used |= {self.root / EPISODES_PATH.format(chunk_index=ep["meta/episodes/chunk_index"],
                                                  file_index=ep["meta/episodes/file_index"]) for ep in reader.episodes}
        for folder, pattern in (("data", "*.parquet"), ("meta/episodes", "*.parquet"), ("videos", "*.mp4")):
            for path in (self.root / folder).rglob(pattern):
                if path not in used:
                    logger.warning("%s: not part of any committed episode (an interrupted save), removed", path)
                    path.unlink()

    def _reset_episode(self) -> None:
        for video, _ in self._videos.values():
            try:
                video.container.close()
            except av.error.FFmpegError:
                pass   # the episode is being dropped: a failing flush changes nothing
            video.path.unlink(missing_ok=True)
        self._videos.clear()
        self._image_histograms.clear()
        self._frames = {k: [] for k in ("state", "action", "reward", "done", "is_intervention", "task",
                                        "measured_timestamp")}

    def _open_videos(self) -> None:
        for camera in self.cameras:
            key = IMAGE_PREFIX + camera
            chunk, file = self._next_files[f"videos/{key}"]
            final = self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            final.parent.mkdir(parents=True, exist_ok=True)
            partial = final.with_name(final.stem + ".partial.mp4")
            self._videos[camera] = (_VideoEncoder(partial, self.fps, self.image_shape), final)

    def add_frame(self, state: np.ndarray, action: np.ndarray, reward: float, done: bool, is_intervention: bool,
                  images: dict[str, np.ndarray] | None = None, task: str = "",
                  measured_timestamp: float | None = None) -> None:
        """Append one control step; images (HxWx3 uint8 RGB, one per camera) are encoded immediately.
        `measured_timestamp`: s since the episode's first frame on the robot's clock (see the class docstring);
        the `timestamp` column is frame_index / fps, the grid the video frames sit on."""
        if self._closed:
            raise RuntimeError("writer is finalized")
        state = np.asarray(state, dtype=np.float32).reshape(-1)
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if state.size != self.state_dim or action.size != self.action_dim:
            raise ValueError(f"state/action sizes {state.size}/{action.size}, expected {self.state_dim}/"
                             f"{self.action_dim}")
        if not self.num_episodes and not self.pending_frames:   # the dataset's first frame decides
            self.measured_timestamps = measured_timestamp is not None
            self.info["features"] = self._features(self.measured_timestamps)
        if (measured_timestamp is not None) != self.measured_timestamps:
            raise ValueError(f"measured_timestamp {measured_timestamp!r}: this dataset "
                             f"{'keeps' if self.measured_timestamps else 'has no column for'} measured timestamps "
                             "(its first frame decided)")
        images = images or {}
        if set(images) != set(self.cameras):
            raise ValueError(f"images for cameras {sorted(images)}, expected {sorted(self.cameras)}")
        for camera in self.cameras:
            image = np.asarray(images[camera])
            if image.shape != self.image_shape or image.dtype != np.uint8:
                raise ValueError(f"camera {camera}: image {image.shape} {image.dtype}, expected {self.image_shape} "
                                 "uint8")
        if self.cameras and not self._videos:
            self._open_videos()
        for camera, (video, _) in self._videos.items():
            image = np.ascontiguousarray(images[camera])
            video.write(image)
            histogram = np.stack([np.bincount(image[..., c].ravel(), minlength=256) for c in range(3)])
            self._image_histograms[camera] = self._image_histograms.get(camera, 0) + histogram
        frames = self._frames
        frames["measured_timestamp"].append(measured_timestamp)
        frames["state"].append(state)
        frames["action"].append(action)
        frames["reward"].append(float(reward))
        frames["done"].append(bool(done))
        frames["is_intervention"].append(bool(is_intervention))
        frames["task"].append(task)

    def discard_episode(self) -> None:
        """Drop the frames recorded since the last save."""
        self._reset_episode()

    def save_episode(self, success: bool | None = None) -> int:
        """Commit the pending frames as a new episode and return its index. `success` goes into the episodes
        metadata (None: unknown). Raises DatasetError, and registers nothing, if a video lost frames."""
        n = self.pending_frames
        if n == 0:
            raise ValueError("no frames to save")
        index = self.num_episodes
        try:
            for camera, (video, _) in self._videos.items():
                video.close()
                found = _video_frame_count(video.path)
                if found != n:
                    raise DatasetError(f"{video.path}: encoder wrote {found} frames for {n} recorded steps of camera "
                                       f"{camera}; episode {index} not saved")
        except DatasetError:
            self._reset_episode()
            raise
        self._check_timing()

        f = self._frames
        for task in f["task"]:
            if task not in self._tasks:
                self._tasks.append(task)
        start = int(self.info["total_frames"])
        columns = {
            STATE: np.stack(f["state"]), ACTION: np.stack(f["action"]),
            REWARD: np.asarray(f["reward"], np.float32), DONE: np.asarray(f["done"]),
            INTERVENTION: np.asarray(f["is_intervention"]),
        }
        if self.measured_timestamps:
            columns[MEASURED_TIMESTAMP] = np.asarray(f["measured_timestamp"], np.float64)
        columns.update({
            "timestamp": (np.arange(n) / self.fps).astype(np.float32),
            "frame_index": np.arange(n, dtype=np.int64), "episode_index": np.full(n, index, np.int64),
            "index": np.arange(start, start + n, dtype=np.int64),
            "task_index": np.asarray([self._tasks.index(t) for t in f["task"]], np.int64),
        })
        table = pa.table({k: _fixed_list(v) if v.ndim == 2 else pa.array(v) for k, v in columns.items()})
        data_chunk, data_file = self._next_files["data"]
        _write_parquet(table, self.root / DATA_PATH.format(chunk_index=data_chunk, file_index=data_file))
        for video, final in self._videos.values():
            _commit(video.path, final)
        self._videos.clear()

        episode_stats = {key: _vector_stats(values.reshape(n, -1)) for key, values in columns.items()}
        for camera, histogram in self._image_histograms.items():
            episode_stats[IMAGE_PREFIX + camera] = _image_stats(histogram, n)
        meta_chunk, meta_file = self._next_files["meta/episodes"]
        episode: dict[str, Any] = {
            "episode_index": index, "tasks": list(dict.fromkeys(f["task"])), "length": n,
            "data/chunk_index": data_chunk, "data/file_index": data_file,
            "dataset_from_index": start, "dataset_to_index": start + n,
        }
        for camera in self.cameras:
            key = f"videos/{IMAGE_PREFIX}{camera}"
            chunk, file = self._next_files[key]
            episode.update({f"{key}/chunk_index": chunk, f"{key}/file_index": file,
                            f"{key}/from_timestamp": 0.0, f"{key}/to_timestamp": n / self.fps})
        for key, stats in episode_stats.items():
            episode.update({f"stats/{key}/{name}": value.tolist() for name, value in stats.items()})
        episode.update({"meta/episodes/chunk_index": meta_chunk, "meta/episodes/file_index": meta_file})
        row = pa.table({k: [v] for k, v in episode.items()}).append_column("success", pa.array([success], pa.bool_()))
        _write_parquet(row, self.root / EPISODES_PATH.format(chunk_index=meta_chunk, file_index=meta_file))

        for key, stats in episode_stats.items():
            self._stats[key] = _aggregate_stats([self._stats[key], stats]) if key in self._stats else stats
        self.info.update(total_episodes=index + 1, total_frames=start + n, total_tasks=len(self._tasks),
                         splits={"train": f"0:{index + 1}"})
        self._write_meta()
        self._next_files = {kind: _next_file(*position, self.info["chunks_size"])
                            for kind, position in self._next_files.items()}
        self._reset_episode()
        return index

    def _check_timing(self) -> None:
        """Warn when measured timestamps drift from the nominal grid (a control loop slower than fps)."""
        if not self.measured_timestamps:
            return
        stamps = np.asarray(self._frames["measured_timestamp"])
        error = np.abs(stamps - np.arange(len(stamps)) / self.fps)
        late = int((error > 0.5 / self.fps).sum())
        if late:
            logger.warning("episode %d: %d of %d frames are off the %.1f Hz grid by more than half a period "
                           "(max %.3f s)", self.num_episodes, late, len(stamps), self.fps, error.max())

    def _write_meta(self) -> None:
        """tasks and stats first, info.json (the commit record) last, each atomically."""
        _write_parquet(_tasks_table(self._tasks), self.root / TASKS_PATH)
        _write_json({key: _stats_to_json(stats) for key, stats in self._stats.items()}, self.root / STATS_PATH)
        _write_json(self.info, self.root / INFO_PATH)

    def finalize(self) -> None:
        """Close the writer; refuses while frames are pending (save or discard them first)."""
        if self.pending_frames:
            raise RuntimeError(f"{self.pending_frames} unsaved frames: call save_episode() or discard_episode() first")
        self._reset_episode()
        self._closed = True

    def __enter__(self) -> LeRobotWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard_episode()
        self.finalize()


# ---- training views ----------------------------------------------------------------------------------------------
class ActionChunks(NamedTuple):
    """Per-frame training samples for action-chunking policies."""

    states: np.ndarray          # (N, S) float32
    actions: np.ndarray         # (N, H, A) float32: a_t .. a_{t+H-1}, holding the arm past the episode end
    mask: np.ndarray            # (N, H) bool: True where the step lies inside the episode
    episode_index: np.ndarray   # (N,) int64
    images: dict[str, np.ndarray] = {}  # {camera: (N, H, W, 3) uint8} when asked for


def chunk_dataset(reader: LeRobotReader, horizon: int, cameras: Sequence[str] = ()) -> ActionChunks:
    """(state_t, action chunk, validity mask) for every frame of every episode, + the named cameras' frames.

    Past an episode's end a chunk holds the arm where the last action left it (core.types.holding_action: zero EE
    deltas, or the last joint target). Repeating the last EE delta instead taught a policy to keep moving where a
    demo ended mid-motion at its success (a reach overshot its 2 cm goal)."""
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    missing = sorted(set(cameras) - set(reader.cameras))
    if missing:
        raise DatasetError(f"{reader.root}: no camera(s) {missing} (the dataset has {reader.cameras})")
    states, actions, masks, episodes = [], [], [], []
    frames: dict[str, list[np.ndarray]] = {camera: [] for camera in cameras}
    for i in range(reader.num_episodes):
        ep = reader.episode(i, images=bool(cameras))
        for camera in cameras:
            frames[camera].append(ep[f"images.{camera}"])
        length = len(ep["action"])
        steps = np.arange(length)[:, None] + np.arange(horizon)[None, :]
        states.append(ep["state"])
        padded = np.concatenate([ep["action"], holding_action(reader.action_names, ep["action"][-1])[None]])
        actions.append(padded[np.minimum(steps, length)])
        masks.append(steps < length)
        episodes.append(np.full(length, i, np.int64))
    if not states:
        raise DatasetError(f"{reader.root}: no episodes")
    return ActionChunks(np.concatenate(states), np.concatenate(actions), np.concatenate(masks),
                        np.concatenate(episodes), {camera: np.concatenate(f) for camera, f in frames.items()})
