"""Offline demonstrations (LeRobot v3) as replay-store episodes, in the policy's normalised action space."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from robot_rl.data.lerobot import DatasetError, LeRobotReader
from robot_rl.policies.base import ChunkPolicy
from robot_rl.policies.encoders import resize_frames
from robot_rl.rl.replay import Episode, normalised_hold


def offline_episodes(root: str, policy: ChunkPolicy, step_penalty: float) -> Iterator[Episode]:
    """Each dataset episode with the step penalty added to its rewards. LeRobot stores the observation before each
    action only, so the state after the last action is taken as the last observed one; a successful episode is
    terminal there and is never bootstrapped from it. Camera policies get their cameras' frames at the policy's
    image size. Chunks past the end hold the arm (replay.normalised_hold), as chunk_dataset pads them for BC.
    Success is the episode's recorded outcome (LeRobotReader.succeeded), not the sign of a possibly shaped reward."""
    spec = policy.spec
    reader = LeRobotReader(root)
    if reader.action_names != list(spec.action_names):
        raise DatasetError(f"{root}: actions {reader.action_names} differ from the policy's {spec.action_names}")
    if len(reader.state_names) != spec.state_dim:
        raise DatasetError(f"{root}: {len(reader.state_names)} state features, the policy takes {spec.state_dim}")
    missing = sorted(set(spec.cameras) - set(reader.cameras))
    if missing:
        raise DatasetError(f"{root}: no camera(s) {missing} for the policy (the dataset has {reader.cameras})")
    for i in range(reader.num_episodes):
        ep = reader.episode(i, images=bool(spec.cameras))
        states = np.concatenate([ep["state"], ep["state"][-1:]])
        actions = policy.normalizer.normalize_actions(torch.as_tensor(ep["action"])).clamp(-1, 1).numpy()
        terminated = bool(ep["done"][-1]) and reader.succeeded(i, ep["reward"])
        images = {cam: resize_frames(np.concatenate([ep[f"images.{cam}"], ep[f"images.{cam}"][-1:]]),
                                     spec.image_size) for cam in spec.cameras}
        yield Episode(states, actions, ep["reward"] + step_penalty, terminated, ep["is_intervention"], "offline",
                      images, hold_action=normalised_hold(spec.action_names, policy.normalizer, actions[-1]))
