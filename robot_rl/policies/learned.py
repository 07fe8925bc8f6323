"""Learned policy backend for the policy node: a ChunkPolicy checkpoint acting on the robot state (+ cameras)."""
from __future__ import annotations

import numpy as np
import torch

from robot_rl.core.observation import Observation
from robot_rl.data.features import state_vector
from robot_rl.policies.base import ChunkPolicy


class LearnedPolicy:
    def __init__(self, policy: ChunkPolicy, version: int, seed: int = 0):
        self.seed = seed
        self.swap(policy, version)
        self.generator = torch.Generator().manual_seed(seed)

    def swap(self, policy: ChunkPolicy, version: int) -> None:
        """Replace the weights; the caller does this only between episodes."""
        spec = policy.spec
        self.policy = policy.eval()
        self.version = version
        self.action_names = tuple(spec.action_names)
        self.horizon = spec.execute_steps
        self.required_streams = ("ee_pose",) + tuple(f"camera/{cam}" for cam in spec.cameras)

    def reset(self, episode: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed * 100_003 + episode)

    @torch.no_grad()
    def act(self, obs: Observation) -> np.ndarray:
        joints = obs.values["joint_states"]
        pos, quat = obs.values["ee_pose"]
        batch = {"state": torch.as_tensor(state_vector(pos, quat, joints[7], joints[:7]))[None]}
        if self.policy.spec.cameras:
            batch["images"] = {cam: torch.as_tensor(np.ascontiguousarray(obs.values[f"camera/{cam}"]))
                               .permute(2, 0, 1)[None] for cam in self.policy.spec.cameras}
        chunk = self.policy.sample(batch, 1, self.generator)[0, 0]  # (H, D) raw units
        return chunk[: self.horizon].numpy().astype(float)
