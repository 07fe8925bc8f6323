"""Typed configuration files: a YAML mapping validated by a pydantic model, errors naming the file."""
from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def load_yaml_model(model: type[Model], path: str | Path | None, **overrides) -> Model:
    """`model` from the YAML mapping at `path` (or its defaults when None), then `overrides` (None values ignored).
    Raises ValueError naming the file and, from pydantic, the key."""
    data: dict = {}
    if path:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: cannot read {model.__name__}: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of {model.__name__} keys")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"{path or 'flags'}: {err}") from None
