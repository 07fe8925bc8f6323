"""Learned policy backend for the policy node: a ChunkPolicy checkpoint acting on the robot state (+ cameras)."""
from __future__ import annotations

import numpy as np
import torch

from robot_rl.core.observation import Observation
from robot_rl.core.state import camera_stream, observation_streams, state_from_streams
from robot_rl.policies.base import ChunkPolicy
from robot_rl.policies.critic import BestOfN


def required_streams(spec) -> tuple[str, ...]:
    """The observation streams a policy with this spec reads (fixed for the life of a policy node)."""
    return observation_streams(spec.environment_state, spec.cameras)


class LearnedBackend:
    def __init__(self, policy: ChunkPolicy, version: int, seed: int = 0, selector: BestOfN | None = None):
        self.seed = seed
        self.swap(policy, version, selector)
        self.generator = torch.Generator().manual_seed(seed)

    def swap(self, policy: ChunkPolicy, version: int, selector: BestOfN | None = None) -> None:
        """Replace the weights (and how a chunk is chosen: one sample, or the best of N under the critic that came
        with them); the caller does this only between episodes."""
        spec = policy.spec
        streams = required_streams(spec)
        if getattr(self, "required_streams", streams) != streams:
            raise ValueError(f"the new policy needs streams {streams}, the running one {self.required_streams}: "
                             "observations cannot change without restarting the policy node")
        self.policy = policy.eval()
        self.selector = selector
        self.version = version
        self.action_names = tuple(spec.action_names)
        self.horizon = spec.execute_steps
        self.required_streams = streams
        self.cameras = tuple(spec.cameras)

    def reset(self, episode: int) -> None:
        self.generator = torch.Generator().manual_seed(self.seed * 100_003 + episode)

    @torch.no_grad()
    def act(self, obs: Observation) -> np.ndarray:
        batch = {"state": torch.as_tensor(state_from_streams(obs.values))[None]}
        if self.cameras:
            batch["images"] = {cam: torch.as_tensor(np.ascontiguousarray(obs.values[camera_stream(cam)]))
                               .permute(2, 0, 1)[None] for cam in self.cameras}
        if self.selector is None:
            chunk = self.policy.sample(batch, 1, self.generator)[0, 0]  # (H, D) raw units
        else:
            best = self.selector.choose(self.policy, batch, self.generator)  # (1, H, D) normalised
            chunk = self.policy.normalizer.unnormalize_actions(best)[0]
        return chunk[: self.horizon].numpy().astype(float)
