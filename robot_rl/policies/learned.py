"""Learned policy backend for the policy node: a ChunkPolicy checkpoint acting on the robot state (+ cameras)."""
from __future__ import annotations

import numpy as np
import torch

from robot_rl.core.observation import Observation
from robot_rl.core.state import environment_vector, state_vector
from robot_rl.policies.base import ChunkPolicy


def required_streams(spec) -> tuple[str, ...]:
    """The observation streams a policy with this spec reads (fixed for the life of a policy node)."""
    return ("ee_pose",) + (("task_state",) if spec.environment_state else ()) + tuple(
        f"camera/{cam}" for cam in spec.cameras)


class LearnedPolicy:
    def __init__(self, policy: ChunkPolicy, version: int, seed: int = 0):
        self.seed = seed
        self.swap(policy, version)
        self.generator = torch.Generator().manual_seed(seed)

    def swap(self, policy: ChunkPolicy, version: int) -> None:
        """Replace the weights; the caller does this only between episodes."""
        spec = policy.spec
        streams = required_streams(spec)
        if getattr(self, "required_streams", streams) != streams:
            raise ValueError(f"the new policy needs streams {streams}, the running one {self.required_streams}: "
                             "observations cannot change without restarting the policy node")
        self.policy = policy.eval()
        self.version = version
        self.action_names = tuple(spec.action_names)
        self.horizon = spec.execute_steps
        self.required_streams = streams

    def reset(self, episode: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed * 100_003 + episode)

    @torch.no_grad()
    def act(self, obs: Observation) -> np.ndarray:
        joints = obs.values["joint_states"]
        pos, quat = obs.values["ee_pose"]
        state = state_vector(pos, quat, joints[7], joints[:7])
        if self.policy.spec.environment_state:
            state = np.r_[state, environment_vector(obs.values["task_state"])]
        batch = {"state": torch.as_tensor(state)[None]}
        if self.policy.spec.cameras:
            batch["images"] = {cam: torch.as_tensor(np.ascontiguousarray(obs.values[f"camera/{cam}"]))
                               .permute(2, 0, 1)[None] for cam in self.policy.spec.cameras}
        chunk = self.policy.sample(batch, 1, self.generator)[0, 0]  # (H, D) raw units
        return chunk[: self.horizon].numpy().astype(float)
