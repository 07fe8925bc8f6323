"""New weights for the policy node's learned backend, without ROS.

The learner sends a version record (version + sha256) and the safetensors bytes on two topics, which arrive in either
order. Bytes are loaded only once a record announced their digest, checked against it, refused when they do not fit
the running policy (action space, observation), and swapped in only between episodes: until then they are staged.
Every swap and every refusal yields what the node reports on `policy/active`; a refusal keeps the old weights running.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from robot_rl.policies.base import ChunkPolicy
from robot_rl.policies.checkpoint import (CONFIG_FILE, CheckpointError, policy_from_bytes, selector_from_bytes,
                                          sha256_hex)
from robot_rl.policies.critic import BestOfN
from robot_rl.policies.learned import LearnedBackend, required_streams


@dataclass(frozen=True)
class ActiveWeights:
    """The weights the backend runs (version, sha256) and, after a refusal, why newer ones were refused."""
    version: int
    sha256: str
    message: str = ""


class WeightUpdate:
    def __init__(self, backend: LearnedBackend, checkpoint: str | Path):
        self.backend = backend
        # the running weights' digest, as the checkpoint records it (load_policy checked it against the weights)
        self.sha256 = json.loads((Path(checkpoint) / CONFIG_FILE).read_text())["sha256"]
        self.announced: dict[int, str] = {}  # version -> sha256, from the version records
        self.unannounced: tuple[bytes, str] | None = None  # the newest weights (+ digest) whose record has not come
        # checked, waiting for an episode boundary: (policy, its selector, version, sha256)
        self.staged: tuple[ChunkPolicy, BestOfN | None, int, str] | None = None
        self.in_episode = False

    def active(self) -> ActiveWeights:
        return ActiveWeights(self.backend.version, self.sha256)

    def on_version(self, version: int, sha256: str) -> ActiveWeights | None:
        self.announced[version] = sha256
        if self.unannounced is not None and self.unannounced[1] == sha256:  # the weights came first
            blob, digest = self.unannounced
            self.unannounced = None
            return self._consider(blob, digest)
        return None

    def on_weights(self, blob: bytes) -> ActiveWeights | None:
        digest = sha256_hex(blob)
        if digest not in self.announced.values():  # topics are not ordered: its record may still be on its way
            self.unannounced = (blob, digest)
            return None
        return self._consider(blob, digest)

    def episode_started(self) -> ActiveWeights | None:
        """Staged weights are swapped in before the episode's first chunk, then kept until its end."""
        swapped = self._swap()
        self.in_episode = True
        return swapped

    def episode_ended(self) -> ActiveWeights | None:
        self.in_episode = False
        return self._swap()

    def _consider(self, blob: bytes, digest: str) -> ActiveWeights | None:
        try:
            policy, version = policy_from_bytes(blob, expected_sha256=digest)
            selector = selector_from_bytes(blob, policy)
        except CheckpointError as err:
            return self._refuse(str(err))
        running = self.backend
        if self.announced.get(version) != digest:
            return self._refuse(f"the weights say version {version}, but the policy/version record for {version} "
                                f"has another sha256")
        if list(policy.spec.action_names) != list(running.action_names):
            return self._refuse(f"weights act on {policy.spec.action_names}, the running policy on "
                                f"{list(running.action_names)}")
        if required_streams(policy.spec) != running.required_streams or \
                policy.spec.state_dim != running.policy.spec.state_dim:
            return self._refuse(f"weights observe {required_streams(policy.spec)} (state dim "
                                f"{policy.spec.state_dim}), the running policy {running.required_streams} (state dim "
                                f"{running.policy.spec.state_dim})")
        if version <= running.version or (self.staged is not None and version <= self.staged[2]):
            return None  # not newer than what runs or waits for the next episode (versions may arrive out of order)
        self.staged = (policy, selector, version, digest)
        return None if self.in_episode else self._swap()

    def _refuse(self, reason: str) -> ActiveWeights:
        return ActiveWeights(self.backend.version, self.sha256, f"refused new weights: {reason}")

    def _swap(self) -> ActiveWeights | None:
        if self.staged is None:
            return None
        policy, selector, version, self.sha256 = self.staged
        self.staged = None
        self.backend.swap(policy, version, selector)
        return self.active()
