"""The job file checked against its JSON Schema, every violation turned into a line naming the field.

``batch/data/job.schema.json`` (linked from ``schemas/``) is the single source of the allowed keys,
types and defaults; each message says where, what was found and what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from .errors import SpecError

__all__ = ["describe_violation", "job_schema", "schema_at", "validate_document"]


@cache
def job_schema() -> dict[str, Any]:
    text = resources.files("batch").joinpath("data/job.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _where(path: Iterable[Any]) -> str:
    parts = [str(p) for p in path]
    if not parts:
        return "the job"
    if len(parts) == 1:
        return f"[{parts[0]}]"
    return f"[{'.'.join(parts[:-1])}].{parts[-1]}"


def schema_at(path: Iterable[Any]) -> dict[str, Any]:
    node: dict[str, Any] = job_schema()
    for p in path:
        node = node.get("properties", {}).get(str(p), {})
    return node


def describe_violation(err: jsonschema.ValidationError) -> str:
    """One line per violation: where, what was found, what is allowed."""
    where = _where(err.absolute_path)
    v = err.validator
    if v == "additionalProperties":
        keys = sorted(schema_at(err.absolute_path).get("properties", {}))
        extra = sorted(set(err.instance) - set(keys)) if isinstance(err.instance, dict) else []
        table = f"[{'.'.join(str(p) for p in err.absolute_path)}]" if err.absolute_path else "the job"
        return f"unknown key {', '.join(extra)} in {table}; allowed keys: {', '.join(keys)}"
    if v == "required":
        return f"{where}: missing required key {err.message.split(' ')[0]}"
    if v == "enum":
        values = ", ".join(str(x) for x in err.validator_value)  # type: ignore[union-attr]
        return f"{where}: {err.instance!r} is not allowed; allowed values: {values}"
    if v == "type":
        return f"{where}: expected {err.validator_value}, got {type(err.instance).__name__} {err.instance!r}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return f"{where}: {err.instance!r} is out of range ({v} {err.validator_value})"
    if v == "pattern":
        return f"{where}: {err.instance!r} does not match {err.validator_value!r}"
    if v == "minLength":
        return f"{where}: must not be empty"
    return f"{where}: {err.message}"


def validate_document(doc: Mapping[str, Any], source: str) -> None:
    validator = jsonschema.Draft202012Validator(job_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n  ".join(describe_violation(e) for e in errors)
        raise SpecError(f"{source}: invalid job spec:\n  {lines}")
