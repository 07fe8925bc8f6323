"""Policy checkpoints: weights as safetensors (never pickle), the spec and version in the safetensors metadata.

A checkpoint directory holds `policy.safetensors` and a human-readable `config.json` {spec, version, sha256};
`load_policy` refuses the weights unless their sha256 matches config.json and the spec/version in both agree.
Weights may carry a best-of-N selector (a chunk critic, `selector.*` tensors + its shape and N in the metadata):
the learner's best_of_n mode publishes it so the policy node chooses chunks as the learner does.
Everything that can go wrong with a file raises `CheckpointError` naming the problem.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import struct
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from robot_rl.policies.base import ChunkPolicy, PolicySpec
from robot_rl.policies.critic import BestOfN, ChunkCritic
from robot_rl.policies.normalizer import Normalizer

FORMAT = "robot_rl.policy"
FORMAT_VERSION = "1"
WEIGHTS_FILE = "policy.safetensors"
CONFIG_FILE = "config.json"
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit
SELECTOR = "selector."  # tensor-name prefix (and metadata key) of a best-of-N selector's critic
# type -> "module:class"; each is imported when a policy of that type is built, so loading a flow checkpoint does not
# pull in diffusers, nor a diffusion one transformers
POLICY_TYPES: dict[str, str] = {"flow": "robot_rl.policies.flow:FlowMatchingPolicy",
                                "diffusion": "robot_rl.policies.diffusion:DiffusionPolicy",
                                "tokenized": "robot_rl.policies.tokenized:TokenizedPolicy"}


class CheckpointError(ValueError):
    """A checkpoint is corrupt, of an unknown format, or does not match the policy it describes."""


def build_policy(spec: PolicySpec, normalizer: Normalizer | None = None) -> ChunkPolicy:
    """A freshly initialised policy of `spec.type` (identity normaliser unless one is given)."""
    if spec.type not in POLICY_TYPES:
        raise ValueError(f"unknown policy type {spec.type!r}; known: {sorted(POLICY_TYPES)}")
    if spec.type == "tokenized":
        from robot_rl.policies.tokenized import TokenizedOptions

        try:
            TokenizedOptions.model_validate(spec.tokenized)
        except ValidationError as e:
            raise CheckpointError(f"invalid tokenized options in the policy spec: {e}") from None
    module, cls = POLICY_TYPES[spec.type].split(":")
    return getattr(importlib.import_module(module), cls)(spec, normalizer)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def policy_to_bytes(policy: ChunkPolicy, version: int, selector: BestOfN | None = None) -> bytes:
    """safetensors bytes of the state dict (weights + normaliser) with format, spec JSON and version as metadata,
    and the selector's critic when there is one."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in policy.state_dict().items()}
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "spec": policy.spec.model_dump_json(),
                "version": str(int(version))}
    if selector is not None:
        tensors |= {SELECTOR + name: t.detach().cpu().contiguous() for name, t in selector.critic.state_dict().items()}
        metadata[SELECTOR] = json.dumps({**selector.critic.shape, "num_candidates": selector.num_candidates})
    return save_safetensors(tensors, metadata=metadata)


def _read_metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors blob: an 8-byte little-endian header length, then a JSON header."""
    if len(data) < 8:
        raise CheckpointError(f"not a safetensors file: only {len(data)} bytes")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(MAX_HEADER_BYTES, len(data) - 8):
        if data[:4] == b"PK\x03\x04" or data[:1] == b"\x80":  # zip (torch.save) or raw pickle protocol ≥ 2
            raise CheckpointError("this is a pickle / torch.save file, not safetensors; refusing to load it "
                                  "(unpickling can run arbitrary code)")
        raise CheckpointError(f"truncated or not a safetensors file: header needs {8 + header_len} bytes, "
                              f"file has {len(data)}")
    try:
        header = json.loads(data[8: 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"not a safetensors file: header is not JSON ({e})") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        raise CheckpointError("safetensors file has no __metadata__ (not written by policy_to_bytes)")
    return metadata


def _parse_metadata(metadata: dict[str, str]) -> tuple[PolicySpec, int]:
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"metadata format is {metadata.get('format')!r}, expected {FORMAT!r}")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"unsupported checkpoint format version {metadata.get('format_version')!r} "
                              f"(this code reads {FORMAT_VERSION!r})")
    if "spec" not in metadata:
        raise CheckpointError("metadata has no policy spec")
    try:
        spec = PolicySpec.model_validate_json(metadata["spec"])
    except ValidationError as e:
        raise CheckpointError(f"invalid policy spec in metadata: {e}") from None
    try:
        version = int(metadata["version"])
    except (KeyError, ValueError):
        raise CheckpointError(f"metadata version {metadata.get('version')!r} is not an integer") from None
    return spec, version


def _check_tensors(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    missing, unexpected = sorted(expected.keys() - tensors.keys()), sorted(tensors.keys() - expected.keys())
    if missing or unexpected:
        raise CheckpointError(f"tensor names do not match the policy the spec describes: missing {missing[:5]}"
                              f"{' …' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                              f"{' …' if len(unexpected) > 5 else ''}")
    for name, t in expected.items():
        if tensors[name].shape != t.shape or tensors[name].dtype != t.dtype:
            raise CheckpointError(f"tensor {name!r} is {tuple(tensors[name].shape)} {tensors[name].dtype}, "
                                  f"the policy needs {tuple(t.shape)} {t.dtype}")


def policy_from_bytes(data: bytes, expected_sha256: str | None = None) -> tuple[ChunkPolicy, int]:
    """(policy in eval mode, version) from `policy_to_bytes` output; verifies the sha256 first when given."""
    if expected_sha256 is not None and sha256_hex(data) != expected_sha256.lower():
        raise CheckpointError(f"sha256 mismatch: data has {sha256_hex(data)}, expected {expected_sha256}")
    spec, version = _parse_metadata(_read_metadata(data))
    try:
        tensors = load_safetensors(data)
    except SafetensorError as e:
        raise CheckpointError(f"corrupt safetensors data: {e}") from None
    policy = build_policy(spec)
    tensors = {name: t for name, t in tensors.items() if not name.startswith(SELECTOR)}
    _check_tensors(tensors, policy.state_dict())
    policy.load_state_dict(tensors)
    return policy.eval(), version


def selector_from_bytes(data: bytes, policy: ChunkPolicy) -> BestOfN | None:
    """The best-of-N selector that `policy_to_bytes` stored with `policy`'s weights, or None (one sample per chunk)."""
    raw = _read_metadata(data).get(SELECTOR)
    if raw is None:
        return None
    try:
        shape = json.loads(raw)
        num_candidates = int(shape.pop("num_candidates"))
        critic = ChunkCritic(policy.encoder.out_dim, policy.spec.horizon * policy.spec.action_dim, **shape)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"invalid selector in metadata: {raw!r} ({e})") from None
    tensors = {name[len(SELECTOR):]: t for name, t in load_safetensors(data).items() if name.startswith(SELECTOR)}
    _check_tensors(tensors, critic.state_dict())
    critic.load_state_dict(tensors)
    return BestOfN(critic.eval(), num_candidates)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_policy(policy: ChunkPolicy, directory: str | os.PathLike, version: int,
                selector: BestOfN | None = None) -> str:
    """Write `policy.safetensors` and `config.json` into `directory` (each replaced atomically); returns the sha256."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = policy_to_bytes(policy, version, selector)
    digest = sha256_hex(data)
    _write_atomic(directory / WEIGHTS_FILE, data)
    config = {"spec": policy.spec.model_dump(), "version": int(version), "sha256": digest}
    _write_atomic(directory / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())
    return digest


def load_policy(directory: str | os.PathLike) -> tuple[ChunkPolicy, int]:
    """(policy in eval mode, version) from a `save_policy` directory, after checking config.json against the weights."""
    directory = Path(directory)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
        spec = PolicySpec.model_validate(config["spec"])
        version, digest = int(config["version"]), str(config["sha256"])
    except FileNotFoundError as e:
        raise CheckpointError(f"missing checkpoint file {e.filename}") from None
    except (KeyError, TypeError, ValueError) as e:  # JSONDecodeError and pydantic's ValidationError are ValueErrors
        raise CheckpointError(f"invalid {directory / CONFIG_FILE}: {e}") from None
    try:
        data = (directory / WEIGHTS_FILE).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"missing checkpoint file {directory / WEIGHTS_FILE}") from None
    policy, weights_version = policy_from_bytes(data, expected_sha256=digest)
    if policy.spec != spec or weights_version != version:
        raise CheckpointError(f"{CONFIG_FILE} (version {version}) disagrees with {WEIGHTS_FILE} "
                              f"(version {weights_version}) on the spec or version")
    return policy, version


def load_selector(directory: str | os.PathLike, policy: ChunkPolicy) -> BestOfN | None:
    """The selector saved with `load_policy(directory)`'s weights, or None."""
    return selector_from_bytes((Path(directory) / WEIGHTS_FILE).read_bytes(), policy)
