"""Loading typed configuration (pydantic models) from YAML/JSON with field-named errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cgm_ray.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base of every config model: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _without_branch_labels(loc: tuple, data: object) -> tuple:
    """``loc`` without the steps that are not in ``data``: pydantic's labels of the union branch
    it tried (``controller.pid.kp_per_h`` -> ``controller.kp_per_h``), so the path reads as the file
    does. The last step stays: it names a missing field as often as a label."""
    kept, node = [], data
    for k, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(node, dict | list) and k < len(loc) - 1:
            continue
        kept.append(part)
    return tuple(kept)


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    # Drop pydantic's union-branch labels ("list[...]", model class names) from the path.
    parts = [p for p in parts if not p.startswith(("list[", "function-")) and not p[:1].isupper()]
    return ".".join(parts) or "(top level)"


def validate(model: type[M], data: object) -> M:
    """``model`` validated from ``data``; the first, most specific error names its field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = max(exc.errors(), key=lambda e: len(e["loc"]))  # the deepest union branch
        loc = _without_branch_labels(first["loc"], data)
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, str(first["ctx"]["discriminator"]).strip("'"))  # e.g. sink.kind
        raise ConfigError(_field(loc), first["msg"]) from None


def read_mapping(path: str | Path) -> dict:
    """A YAML or JSON file's top-level mapping."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read file: {exc.strerror}") from None
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        data = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), f"malformed JSON at line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(str(path), f"malformed YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "must be a mapping of fields, not "
                          f"{type(data).__name__}")
    return data
