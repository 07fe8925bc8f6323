"""Demonstrations rewarded the way a graph's reward node rewards online steps (`robot-rl reward relabel`).

A learner stores its demonstrations with the rewards they were recorded with (collect_sim: 1[success]). When the
graph pays its online episodes with another source, for example DEG+ (θ·success plus the shaping of Φ), the critic
would learn two reward scales at once. Relabelling runs the graph's own reward source over every demo's frames and
writes a new dataset; the learner's `dataset` then points at it.

A dataset holds neither the simulator's task state nor an operator. Wherever the graph's success comes from the sim
or a human, the verdict here is the dataset's recorded outcome (LeRobotReader.succeeded), given at the episode's
last frame. The classifier and DEG read the frames, as they do online.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from robot_rl.data.lerobot import DatasetError, LeRobotReader, copy_with_rewards
from robot_rl.rewards.params import SourceConfig
from robot_rl.rewards.sources import RewardInput, make_source

VERDICT_SOURCES = ("sim", "human")   # success sources whose verdict a dataset holds as its outcome


def offline_source_config(cfg: SourceConfig) -> SourceConfig:
    """`cfg` with a success decided by the sim or an operator replaced by the dataset's outcome (as an operator's),
    and without the step penalty: the learner adds that to every demo step itself (its poco.step_penalty, one value
    with the reward node's in a graph)."""
    update: dict = {"step_penalty": 0.0}
    if cfg.source in VERDICT_SOURCES:
        update["source"] = "human"
    if cfg.source == "deg+" and cfg.success_source in VERDICT_SOURCES:
        update["success_source"] = "human"
    return cfg.model_copy(update=update)


def relabel_dataset(dataset: str | Path, out: str | Path, cfg: SourceConfig) -> dict:
    """Write `dataset` with its rewards from the source `cfg` into `out`; returns the mean return before and after.
    The reward of action t is the source's step on the frame after it (the last frame repeated for the last action),
    as the reward node scores the observation that follows each executed action."""
    reader = LeRobotReader(dataset)
    source = make_source(offline_source_config(cfg))
    needs_frames = source.reads_pixels
    if needs_frames and cfg.camera not in reader.cameras:
        raise DatasetError(f"{dataset}: reward source {cfg.source!r} reads camera {cfg.camera!r}, the dataset has "
                           f"{reader.cameras or 'no cameras'}")
    relabelled, recorded = [], []
    for i in tqdm(range(reader.num_episodes), desc=f"relabel ({source.name})", unit="ep"):
        ep = reader.episode(i, images=needs_frames)
        frames = ep.get(f"images.{cfg.camera}")
        success = reader.succeeded(i, ep["reward"])
        T = len(ep["reward"])

        def observation(t: int, last: bool = False) -> RewardInput:
            return RewardInput(stamp=t / reader.fps, image=None if frames is None else frames[min(t, T - 1)],
                               operator=("success" if success else "failure") if last else None)

        source.prepare(observation(0), reader.tasks[ep["task_index"][0]] if reader.tasks else "")
        source.reset()
        rewards = np.array([source.step(observation(t + 1, last=t == T - 1)).reward for t in range(T)], np.float32)
        relabelled.append(rewards)
        recorded.append(ep["reward"])
    copy_with_rewards(dataset, out, relabelled)
    return {"dataset": str(dataset), "out": str(out), "source": source.name, "episodes": reader.num_episodes,
            "recorded_return": float(np.mean([r.sum() for r in recorded])),
            "return": float(np.mean([r.sum() for r in relabelled]))}
