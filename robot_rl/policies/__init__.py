"""Generative chunk policies (flow matching, diffusion), their normaliser and safetensors checkpoints.

Exports resolve lazily (PEP 562), so `import robot_rl.policies.scripted` does not pull in torch and diffusers.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PolicySpec": "base", "ChunkPolicy": "base",
    "Normalizer": "normalizer",
    "FlowMatchingPolicy": "flow", "DiffusionPolicy": "diffusion",
    "build_policy": "checkpoint", "save_policy": "checkpoint", "load_policy": "checkpoint",
    "policy_to_bytes": "checkpoint", "policy_from_bytes": "checkpoint", "sha256_hex": "checkpoint",
    "CheckpointError": "checkpoint", "selector_from_bytes": "checkpoint", "load_selector": "checkpoint",
    "ChunkCritic": "critic", "BestOfN": "critic",
    "Noise": "noise", "ShardNoise": "noise",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
