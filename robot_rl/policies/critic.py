"""The chunk critic Q(s, A) and best-of-N selection under it: POCO's learner trains the critic (robot_rl.rl.poco),
and the same `BestOfN` picks the executed chunk in the learner's own rollouts and, once the learner publishes the
critic with the weights, in the policy node (the best_of_n baseline through the ROS graph)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robot_rl.policies.activations import Mish
from robot_rl.policies.base import ChunkPolicy


class ChunkCritic(nn.Module):
    """Ensemble of Q(s, A) MLPs with LayerNorm on the observation features and the flattened normalised chunk.
    The features are the policy's own encoding of s (normalised state, ⊕ image features for camera policies),
    taken without gradient: the critic never trains the policy's image encoder."""

    def __init__(self, feature_dim: int, chunk_dim: int, hidden: int, depth: int, ensemble: int):
        super().__init__()
        self.shape = {"hidden": hidden, "depth": depth, "ensemble": ensemble}  # what rebuilds it from a checkpoint

        def mlp() -> nn.Sequential:
            layers: list[nn.Module] = []
            width = feature_dim + chunk_dim
            for _ in range(depth):
                layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), Mish()]
                width = hidden
            return nn.Sequential(*layers, nn.Linear(width, 1))

        self.members = nn.ModuleList(mlp() for _ in range(ensemble))

    def forward(self, features: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
        """(K, B) values for observation features (B, F) and chunks (B, H, D)."""
        x = torch.cat([features, chunk.flatten(1)], dim=-1)
        return torch.stack([m(x).squeeze(-1) for m in self.members])


@dataclass
class BestOfN:
    """argmax_j Q̄(s, A^j) over N chunks sampled from the policy (Q-chunking's best-of-N), Q̄ the ensemble mean."""
    critic: ChunkCritic
    num_candidates: int

    @torch.no_grad()
    def choose(self, policy: ChunkPolicy, obs: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised chunks (B, H, D)."""
        candidates = policy.sample_normalized(obs, self.num_candidates, generator)  # (B, N, H, D)
        B, N = candidates.shape[:2]
        features = policy.encode(obs).repeat_interleave(N, 0)
        q = self.critic(features, candidates.flatten(0, 1)).mean(0).view(B, N)
        return candidates[torch.arange(B), q.argmax(1)]
