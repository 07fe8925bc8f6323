"""Typed configuration: a YAML mapping validated by a pydantic model, then `KEY=VALUE` overrides, errors naming the
file or the flag. `--set` means the same everywhere: `robot-rl demo --set poco.clip=0.3`,
`robot-rl finetune-gym --set poco.clip=0.3` and the bringup's `--set learner.poco.clip=0.3`."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def parse_set(item: str) -> tuple[list[str], object]:
    """`a.b.c=VALUE` -> (["a", "b", "c"], VALUE read as YAML, so 16 is an int and [a, b] a list)."""
    key, sep, value = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ValueError(f"--set {item!r}: expected KEY=VALUE (nested keys with dots, e.g. poco.clip=0.3)")
    try:
        return key.split("."), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ValueError(f"--set {item!r}: the value is not valid YAML: {err}") from None


def apply_sets(data: dict, sets: Sequence[str]) -> dict:
    """`data` with every `--set` applied in order (nested mappings are created as needed)."""
    for item in sets:
        path, value = parse_set(item)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"--set {item!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def load_yaml_model(model: type[Model], path: str | Path | None, sets: Sequence[str] = (), **overrides) -> Model:
    """`model` from the YAML mapping at `path` (or its defaults when None), then `overrides` (None values ignored),
    then `sets`. Raises ValueError naming the file and, from pydantic, the key."""
    data: dict = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: cannot read {model.__name__}: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of {model.__name__} keys")
    data.update({k: v for k, v in overrides.items() if v is not None})
    apply_sets(data, sets)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"{path or 'flags'}: {err}") from None
