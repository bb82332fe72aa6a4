"""A JSON Schema as an Arrow type, so a structured answer lands in a typed, queryable column.

- ``object`` → struct of its properties (in schema order), ``array`` → list of its items;
- ``integer`` → int64, ``number`` → float64, ``boolean`` → bool, ``string`` and ``enum`` → string;
- a field is nullable where the schema allows null (``"type": ["string", "null"]``, or an
  ``anyOf`` with ``{"type": "null"}``); every other field is declared non-null;
- ``$ref`` follows local references (a recursive one ends, at the point it recurs, as JSON text);
- what has no single Arrow type (an ``anyOf`` of different types, an object without properties)
  is kept as its JSON text in a string field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

__all__ = ["arrow_field", "arrow_type", "to_arrow_value"]

_SCALARS = {"integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_(), "string": pa.string()}


def arrow_type(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> pa.DataType:
    """The Arrow type of values the schema allows (see the module's note)."""
    return arrow_field("x", schema, root if root is not None else schema).type


def arrow_field(
    name: str, node: Mapping[str, Any], root: Mapping[str, Any], seen: frozenset[str] = frozenset()
) -> pa.Field:
    """One named field for a schema node: its type and whether it may be null."""
    found, seen = _deref(node, root, seen)
    if found is None:
        return pa.field(name, pa.string(), nullable=True)
    kinds, nullable = _kinds(found, root, seen)
    if len(kinds) != 1:
        return pa.field(name, pa.string(), nullable=nullable or not kinds)
    kind, sub = kinds[0]
    if kind == "object":
        props = sub.get("properties") or {}
        if not props:
            return pa.field(name, pa.string(), nullable=nullable)
        return pa.field(name, pa.struct([arrow_field(k, v, root, seen) for k, v in props.items()]), nullable=nullable)
    if kind == "array":
        items = sub.get("items")
        item = arrow_field("item", items, root, seen) if isinstance(items, Mapping) else pa.field("item", pa.string())
        return pa.field(name, pa.list_(item), nullable=nullable)
    return pa.field(name, _SCALARS.get(kind, pa.string()), nullable=nullable)


def _kinds(
    node: Mapping[str, Any], root: Mapping[str, Any], seen: frozenset[str]
) -> tuple[list[tuple[str, Mapping[str, Any]]], bool]:
    """The non-null kinds a node allows (each with the sub-schema that says so), and whether null is allowed."""
    if "anyOf" in node:
        out: list[tuple[str, Mapping[str, Any]]] = []
        nullable = False
        for branch in node["anyOf"]:
            sub, sub_seen = _deref(branch, root, seen)
            if sub is None:
                return [], True
            kinds, null = _kinds(sub, root, sub_seen)
            out += kinds
            nullable |= null
        distinct = {k for k, _ in out}
        return (
            out[:1] if len(distinct) == 1 and distinct <= {"integer", "number", "boolean", "string"} else out
        ), nullable
    if "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        null = None in values
        found = sorted({_json_kind(v) for v in values if v is not None})
        return [(k, node) for k in found], null
    t = node.get("type")
    types = [t] if isinstance(t, str) else [x for x in t if isinstance(x, str)] if isinstance(t, list) else []
    return [(x, node) for x in types if x != "null"], "null" in types


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    return "string" if isinstance(v, str) else "other"


def _deref(node: Any, root: Mapping[str, Any], seen: frozenset[str]) -> tuple[Mapping[str, Any] | None, frozenset[str]]:
    """A node with its local ``$ref`` followed; None where it recurs or does not resolve."""
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen:
            return None, seen
        seen = seen | {ref}
        target: Any = root
        for part in [p for p in ref.lstrip("#").split("/") if p]:
            target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, Mapping) else None
        node = target
    return (node if isinstance(node, Mapping) else None), seen


def to_arrow_value(value: Any, t: pa.DataType) -> Any:
    """A parsed JSON value shaped for a field of type ``t``: JSON text where ``t`` is a string
    and the value is not one, int to float where a number is wanted; missing struct keys null."""
    if value is None:
        return None
    if pa.types.is_struct(t):
        if not isinstance(value, Mapping):
            return None
        return {f.name: to_arrow_value(value.get(f.name), f.type) for f in t}
    if pa.types.is_list(t):
        return [to_arrow_value(v, t.value_type) for v in value] if isinstance(value, list) else None
    if pa.types.is_string(t):
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if pa.types.is_floating(t):
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if pa.types.is_integer(t):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return value if isinstance(value, bool) else None
