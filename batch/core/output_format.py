"""What a job asks the model to answer in: a JSON Schema (structured outputs) or plain JSON mode.

``[output].schema`` names a JSON Schema file (relative to the job file) or holds it inline as a
table; ``--schema FILE`` overrides it. ``[output].json = "object"`` asks for JSON mode instead.
Loading checks what makes the schema unreadable (file not found, not JSON, root not an object);
the strict-mode rules and the model's capability are the planner's preflight
(:mod:`batch.plan.schema_check`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import SpecError

__all__ = ["OutputFormat", "load_output_format", "schema_file_format"]

FormatKind = Literal["json_schema", "json_object"]


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """The answer's format: ``kind`` json_schema (with ``schema``) or json_object (JSON mode).

    ``source`` names where the schema came from (its path, or ``[output].schema`` when inline),
    for error messages; ``name`` is the ``json_schema.name`` sent; ``flatten`` also spreads the
    top-level properties into result columns of their own."""

    kind: FormatKind
    source: str
    schema: Mapping[str, Any] | None = field(default=None, hash=False, compare=True)
    name: str = "answer"
    flatten: bool = False


def load_output_format(out: Mapping[str, Any], base: Path) -> OutputFormat | None:
    """The job's ``[output]`` schema/json/flatten keys as an OutputFormat, or None for free text."""
    raw = out.get("schema")
    json_kind = out.get("json")
    flatten = bool(out.get("flatten", False))
    if raw is not None and json_kind == "object":
        raise SpecError('[output]: give either schema (structured outputs) or json = "object" (JSON mode), not both')
    if raw is None:
        if flatten:
            raise SpecError("[output].flatten needs [output].schema: only a schema says which columns to make")
        return OutputFormat("json_object", "[output].json") if json_kind == "object" else None
    if isinstance(raw, Mapping):
        return OutputFormat("json_schema", "[output].schema", dict(raw), _name(None, raw), flatten)
    return schema_file_format(_resolve(base, str(raw)), flatten=flatten)


def schema_file_format(path: Path, *, flatten: bool = False) -> OutputFormat:
    """An OutputFormat read from a JSON Schema file (``[output].schema = "file"`` or ``--schema``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"schema file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read schema file {path}: {exc}") from None
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise SpecError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise SpecError(f"{path}: the schema's root must be a JSON object, not {type(schema).__name__}")
    return OutputFormat("json_schema", str(path), schema, _name(path, schema), flatten)


def _name(path: Path | None, schema: Mapping[str, Any]) -> str:
    """``json_schema.name``: the schema's title, else the file's stem; [a-zA-Z0-9_-], at most 64."""
    title = schema.get("title")
    raw = title if isinstance(title, str) and title else (path.name.split(".")[0] if path else "answer")
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", raw).strip("_")[:64]
    return name or "answer"


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return (p if p.is_absolute() else base / p).resolve()
