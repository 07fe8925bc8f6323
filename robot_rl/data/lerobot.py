"""LeRobot v3.0 datasets: a crash-safe streaming writer and a validating reader (numpy, pyarrow, OpenCV).

Layout under `root`:
    meta/info.json, meta/stats.json, meta/tasks.parquet, meta/episodes/chunk-000/file-000.parquet
    data/chunk-CCC/file-FFF.parquet, videos/observation.images.<cam>/chunk-CCC/file-FFF.mp4
The writer gives every episode its own data file and video files (file index = episode index mod chunks_size;
`data_files_size_in_mb = video_files_size_in_mb = 0` tells LeRobot's own writer to roll over after every episode
too). Readers locate frames through the chunk/file indices stored per episode in meta/episodes, as v3 specifies.

Durability: an episode's files are written under temporary names and renamed into place once complete, then the
meta files are rewritten atomically, info.json last: info.json's totals are the commit record. A crash loses at
most the episode being recorded; reopening the root with a writer appends to what was committed.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
# LeRobot encodes AV1 (libsvtav1) through PyAV; opencv-python-headless can only write MPEG-4 Part 2 ("mp4v") here.
VIDEO_CODEC = "mp4v"

STATE = "observation.state"
ACTION = "action"
REWARD = "next.reward"
DONE = "next.done"
INTERVENTION = "complementary_info.is_intervention"
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


def _fixed_list(values: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _vector(table: pa.Table, name: str) -> np.ndarray:
    """(N, D) array from a list / fixed-size-list column, (N, 1) from a scalar column."""
    col = table.column(name).combine_chunks()
    if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
        return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1)
    return col.to_numpy(zero_copy_only=False).reshape(len(col), 1)


def _video_frame_count(path: Path) -> int:
    """Frame count from the mp4 container (the sample table the muxer wrote); -1 when unreadable."""
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
    finally:
        cap.release()


def _read_video(path: Path, start: int, count: int) -> np.ndarray:
    """(count, H, W, 3) uint8 RGB frames starting at frame `start`."""
    cap = cv2.VideoCapture(str(path))
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames = []
        for _ in range(count):
            ok, frame = cap.read()
            if not ok:
                raise DatasetError(f"{path}: decoded {len(frames)} frames from frame {start}, expected {count}")
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return np.stack(frames)


@dataclass
class _Moments:
    """Running count / mean / sum of squared deviations / min / max, mergeable across batches (Chan et al.)."""

    count: int
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> _Moments:
        """Moments of the rows of x (N, D)."""
        x = x.astype(np.float64)
        mean = x.mean(axis=0)
        return cls(len(x), mean, ((x - mean) ** 2).sum(axis=0), x.min(axis=0), x.max(axis=0))

    @classmethod
    def of_image(cls, image: np.ndarray) -> _Moments:
        """Per-channel moments of one HxWx3 uint8 frame in [0, 1], counted as one sample (LeRobot's convention)."""
        pixels = image.reshape(-1, image.shape[-1]).astype(np.float64) / 255.0
        moments = cls.of(pixels)
        return cls(1, moments.mean, moments.m2 / len(pixels), moments.min, moments.max)

    def merge(self, other: _Moments | None) -> _Moments:
        if other is None:
            return self
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / n
        m2 = self.m2 + other.m2 + delta**2 * self.count * other.count / n
        return _Moments(n, mean, m2, np.minimum(self.min, other.min), np.maximum(self.max, other.max))

    def to_json(self, shape: tuple[int, ...]) -> dict[str, list]:
        std = np.sqrt(self.m2 / self.count)
        return {"min": self.min.reshape(shape).tolist(), "max": self.max.reshape(shape).tolist(),
                "mean": self.mean.reshape(shape).tolist(), "std": std.reshape(shape).tolist(), "count": [self.count]}

    @classmethod
    def from_json(cls, d: dict[str, list]) -> _Moments:
        count = int(d["count"][0])
        flat = {k: np.asarray(d[k], dtype=np.float64).reshape(-1) for k in ("mean", "std", "min", "max")}
        return cls(count, flat["mean"], flat["std"] ** 2 * count, flat["min"], flat["max"])


def make_features(fps: float, state_names: Sequence[str], action_names: Sequence[str], cameras: Sequence[str] = (),
                  image_shape: tuple[int, int, int] = (64, 64, 3)) -> dict[str, dict]:
    """The `features` block of info.json: dtype, shape and names of every per-frame field."""
    features: dict[str, dict] = {
        STATE: {"dtype": "float32", "shape": [len(state_names)], "names": list(state_names)},
        ACTION: {"dtype": "float32", "shape": [len(action_names)], "names": list(action_names)},
        REWARD: {"dtype": "float32", "shape": [1], "names": None},
        DONE: {"dtype": "bool", "shape": [1], "names": None},
        INTERVENTION: {"dtype": "bool", "shape": [1], "names": None},
    }
    height, width, channels = image_shape
    for cam in cameras:
        features[IMAGE_PREFIX + cam] = {
            "dtype": "video", "shape": [height, width, channels], "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": VIDEO_CODEC,
                     "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": channels, "has_audio": False}}
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
    """Read-only view of a LeRobot v3.0 dataset; validates metadata, parquet row counts and video frame counts."""

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
        rows = [row for f in files for row in pq.read_table(f).to_pylist()]
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
                    raise DatasetError(f"{self.root / EPISODES_PATH}: episode {i} spans {end - start} frames of "
                                       f"{camera} video but has {ep['length']} parquet rows")
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
        frame_index, index, task_index (T,), plus `images.<cam>` (T, H, W, 3) uint8 RGB when `images`."""
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
        out["frame_index"] = frame_index.astype(np.int64)
        for name in ("index", "task_index"):
            out[name] = _vector(table, name)[:, 0].astype(np.int64)
        if images:
            for camera in self.cameras:
                start, _ = self._video_span(i, camera)
                out[f"images.{camera}"] = _read_video(self.video_path(i, camera), start, n)
        return out

    def frames(self, images: bool = False) -> Iterator[dict[str, Any]]:
        """Every frame in order, as dicts with the keys of `episode()` plus `episode_index`."""
        for i in range(self.num_episodes):
            ep = self.episode(i, images)
            for t in range(self.episodes[i]["length"]):
                yield {"episode_index": i, **{k: v[t] for k, v in ep.items()}}


# ---- writer ------------------------------------------------------------------------------------------------------
class LeRobotWriter:
    """Streams frames into a LeRobot v3.0 dataset: video encoded as frames arrive, one atomic commit per episode.

    Opening an existing root resumes it (same fps and features required); new episodes are appended.
    """

    def __init__(self, root: str | Path, fps: float, state_names: Sequence[str], action_names: Sequence[str],
                 cameras: Sequence[str] = (), image_shape: tuple[int, int, int] = (64, 64, 3),
                 robot_type: str = "panda"):
        self.root = Path(root)
        self.fps = float(fps)
        self.cameras = tuple(cameras)
        self.image_shape = tuple(image_shape)
        self.state_dim, self.action_dim = len(state_names), len(action_names)
        features = make_features(self.fps, state_names, action_names, self.cameras, image_shape)
        if (self.root / INFO_PATH).exists():
            self._remove_partial_files()
            reader = LeRobotReader(self.root)
            if reader.fps != self.fps or reader.features != features:
                raise DatasetError(f"{self.root / INFO_PATH}: existing dataset has fps {reader.fps} and features "
                                   f"{sorted(reader.features)}; cannot append fps {self.fps} with different features")
            self.info, self._episodes, self._tasks = reader.info, reader.episodes, reader.tasks
            self._stats = {k: _Moments.from_json(v) for k, v in reader.stats.items()}
        else:
            self.info = {
                "codebase_version": CODEBASE_VERSION, "robot_type": robot_type,
                "fps": int(self.fps) if self.fps.is_integer() else self.fps,
                "total_episodes": 0, "total_frames": 0, "total_tasks": 0, "chunks_size": CHUNKS_SIZE,
                "data_files_size_in_mb": 0, "video_files_size_in_mb": 0,  # 0: every episode starts a new file
                "data_path": DATA_PATH, "video_path": VIDEO_PATH if self.cameras else None,
                "features": features, "splits": {}, "tools": [],
            }
            self._episodes, self._tasks, self._stats = [], [], {}
        self._frames: dict[str, list] = {}
        self._videos: dict[str, tuple[cv2.VideoWriter, Path, Path]] = {}   # camera -> (writer, partial, final)
        self._image_moments: dict[str, _Moments] = {}
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

    def _reset_episode(self) -> None:
        for writer, partial, _ in self._videos.values():
            writer.release()
            partial.unlink(missing_ok=True)
        self._videos.clear()
        self._image_moments.clear()
        self._frames = {k: [] for k in ("state", "action", "reward", "done", "is_intervention", "task", "timestamp")}

    def _open_videos(self) -> None:
        chunk, file = divmod(self.num_episodes, CHUNKS_SIZE)
        height, width, _ = self.image_shape
        for camera in self.cameras:
            final = self.root / VIDEO_PATH.format(video_key=IMAGE_PREFIX + camera, chunk_index=chunk, file_index=file)
            final.parent.mkdir(parents=True, exist_ok=True)
            partial = final.with_name(final.stem + ".partial.mp4")   # OpenCV picks the container from the suffix
            writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*VIDEO_CODEC), self.fps, (width, height))
            if not writer.isOpened():
                raise DatasetError(f"{partial}: OpenCV could not open a {VIDEO_CODEC} video writer")
            self._videos[camera] = (writer, partial, final)

    def add_frame(self, state: np.ndarray, action: np.ndarray, reward: float, done: bool, is_intervention: bool,
                  images: dict[str, np.ndarray] | None = None, task: str = "", timestamp: float | None = None) -> None:
        """Append one control step; images (HxWx3 uint8 RGB, one per camera) are encoded immediately.
        `timestamp` (s since episode start) defaults to frame_index / fps; measured stamps are checked on save."""
        if self._closed:
            raise RuntimeError("writer is finalized")
        state = np.asarray(state, dtype=np.float32).reshape(-1)
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if state.size != self.state_dim or action.size != self.action_dim:
            raise ValueError(f"state/action sizes {state.size}/{action.size}, expected {self.state_dim}/"
                             f"{self.action_dim}")
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
        for camera, (writer, _, _) in self._videos.items():
            writer.write(cv2.cvtColor(images[camera], cv2.COLOR_RGB2BGR))
            self._image_moments[camera] = _Moments.of_image(images[camera]).merge(self._image_moments.get(camera))
        frames = self._frames
        frames["timestamp"].append(self.pending_frames / self.fps if timestamp is None else float(timestamp))
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
        chunk, file = divmod(index, CHUNKS_SIZE)
        for writer, _, _ in self._videos.values():
            writer.release()
        for camera, (_, partial, _) in self._videos.items():
            found = _video_frame_count(partial)
            if found != n:
                self._reset_episode()
                raise DatasetError(f"{partial}: encoder wrote {found} frames for {n} recorded steps of camera "
                                   f"{camera}; episode {index} not saved")
        self._check_timing()

        f = self._frames
        for task in f["task"]:
            if task not in self._tasks:
                self._tasks.append(task)
        start = int(self.info["total_frames"])
        columns = {
            STATE: np.stack(f["state"]), ACTION: np.stack(f["action"]),
            REWARD: np.asarray(f["reward"], np.float32), DONE: np.asarray(f["done"]),
            INTERVENTION: np.asarray(f["is_intervention"]), "timestamp": np.asarray(f["timestamp"], np.float32),
            "frame_index": np.arange(n, dtype=np.int64), "episode_index": np.full(n, index, np.int64),
            "index": np.arange(start, start + n, dtype=np.int64),
            "task_index": np.asarray([self._tasks.index(t) for t in f["task"]], np.int64),
        }
        table = pa.table({k: _fixed_list(v) if v.ndim == 2 else pa.array(v) for k, v in columns.items()})
        _write_parquet(table, self.root / DATA_PATH.format(chunk_index=chunk, file_index=file))
        for _, partial, final in self._videos.values():
            _commit(partial, final)
        self._videos.clear()

        episode: dict[str, Any] = {
            "episode_index": index, "tasks": list(dict.fromkeys(f["task"])), "length": n,
            "data/chunk_index": chunk, "data/file_index": file,
            "dataset_from_index": start, "dataset_to_index": start + n,
        }
        for camera in self.cameras:
            key = IMAGE_PREFIX + camera
            episode.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                            f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": n / self.fps})
        episode.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0, "success": success})
        self._episodes.append(episode)

        for key, values in columns.items():
            self._stats[key] = _Moments.of(values.reshape(n, -1)).merge(self._stats.get(key))
        for camera, moments in self._image_moments.items():
            self._stats[IMAGE_PREFIX + camera] = moments.merge(self._stats.get(IMAGE_PREFIX + camera))
        self.info.update(total_episodes=index + 1, total_frames=start + n, total_tasks=len(self._tasks),
                         splits={"train": f"0:{index + 1}"})
        self._write_meta()
        self._reset_episode()
        return index

    def _check_timing(self) -> None:
        """Warn when measured timestamps drift from the nominal grid (a control loop slower than fps)."""
        stamps = np.asarray(self._frames["timestamp"])
        error = np.abs(stamps - np.arange(len(stamps)) / self.fps)
        late = int((error > 0.5 / self.fps).sum())
        if late:
            logger.warning("episode %d: %d of %d frames are off the %.1f Hz grid by more than half a period "
                           "(max %.3f s)", self.num_episodes, late, len(stamps), self.fps, error.max())

    def _write_meta(self) -> None:
        """tasks, episodes and stats first, info.json (the commit record) last, each atomically."""
        _write_parquet(pa.table({"task_index": pa.array(range(len(self._tasks)), pa.int64()),
                                 "task": pa.array(self._tasks, pa.string())}), self.root / TASKS_PATH)
        _write_parquet(pa.Table.from_pylist(self._episodes), self.root / EPISODES_PATH)
        shapes = {IMAGE_PREFIX + camera: (self.image_shape[2], 1, 1) for camera in self.cameras}
        _write_json({k: m.to_json(shapes.get(k, (-1,))) for k, m in self._stats.items()}, self.root / STATS_PATH)
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
    actions: np.ndarray         # (N, H, A) float32: a_t .. a_{t+H-1}, the last action repeated past the episode end
    mask: np.ndarray            # (N, H) bool: True where the step lies inside the episode
    episode_index: np.ndarray   # (N,) int64
    images: dict[str, np.ndarray] = {}  # {camera: (N, H, W, 3) uint8} when asked for


def chunk_dataset(reader: LeRobotReader, horizon: int, cameras: Sequence[str] = ()) -> ActionChunks:
    """(state_t, action chunk, validity mask) for every frame of every episode, + the named cameras' frames."""
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
        actions.append(ep["action"][np.minimum(steps, length - 1)])
        masks.append(steps < length)
        episodes.append(np.full(length, i, np.int64))
    if not states:
        raise DatasetError(f"{reader.root}: no episodes")
    return ActionChunks(np.concatenate(states), np.concatenate(actions), np.concatenate(masks),
                        np.concatenate(episodes), {camera: np.concatenate(f) for camera, f in frames.items()})
