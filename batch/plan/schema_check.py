"""Preflight of a job's answer format, and the ``response_format`` it sends.

Checked before anything is sent (a :class:`~batch.core.SpecError`: exit 2, naming the schema):

- the model takes structured outputs with images (the catalogue's ``structured_outputs``);
- JSON mode: the word "JSON" is in the messages (else the service answers 400);
- a schema follows Azure's strict-mode rules (azure-vision-api.md §1.6): the root is an object;
  every object lists every property in ``required`` and has ``additionalProperties: false``;
  at most :data:`MAX_PROPERTIES` object properties in all and :data:`MAX_DEPTH` levels of objects
  nested below the root (``$defs`` are checked where a ``$ref`` uses them); no keyword outside
  :data:`ALLOWED_KEYWORDS` (Azure lists ``minLength``, ``pattern``, ``format``, ``minimum``,
  ``minItems``, ``allOf`` ... as unsupported); every ``$ref`` resolves inside the schema.

Token accounting (an assumption: the service's docs do not say how a schema is billed): the
schema costs the tokens of its compact JSON text (``json.dumps(schema, separators=(",", ":"))``)
in the model's encoding, on top of the messages. The emulator bills it the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..core import JobSpec, ModelInfo, OutputFormat, SpecError
from ..tokens import get_encoding

__all__ = [
    "ALLOWED_KEYWORDS",
    "MAX_DEPTH",
    "MAX_PROPERTIES",
    "check_format",
    "format_tokens",
    "has_json_word",
    "response_format",
    "strict_problems",
]

MAX_PROPERTIES = 100
MAX_DEPTH = 5
MAX_ENUM_VALUES = 500
ALLOWED_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const", "anyOf",
        "$ref", "$defs", "definitions", "description", "title", "$schema", "$id", "$comment",
        "default", "examples",
    }
)  # fmt: skip
_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})


def response_format(fmt: OutputFormat) -> dict[str, Any]:
    """The request body's ``response_format`` for the job's answer format."""
    if fmt.kind == "json_object":
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": fmt.name, "strict": True, "schema": fmt.schema}}


def format_tokens(fmt: OutputFormat | None, tokenizer: str) -> int:
    """Prompt tokens the answer format adds (see the module's note: an assumption)."""
    if fmt is None or fmt.schema is None:
        return 0
    return len(get_encoding(tokenizer).encode(json.dumps(fmt.schema, separators=(",", ":"))))


def has_json_word(*texts: str) -> bool:
    """JSON mode's condition: some message contains the word JSON (any case)."""
    return any("json" in t.lower() for t in texts)


def check_format(spec: JobSpec, model: ModelInfo) -> None:
    """Refuse the job (SpecError) if its answer format cannot be sent as it is."""
    fmt = spec.output.format
    if fmt is None:
        return
    if not model.structured_outputs:
        raise SpecError(
            f"{fmt.source}: model {model.name!r} does not take structured outputs or JSON mode on requests "
            "with images (the catalogue's structured_outputs is false; e.g. gpt-4-turbo-2024-04-09 has "
            "neither with images); use gpt-4o 2024-08-06 or later, gpt-4o-mini, gpt-4.1, o1/o3/o4-mini or gpt-5"
        )
    if fmt.kind == "json_object":
        if not has_json_word(spec.prompt.system, spec.prompt.user):
            raise SpecError(
                '[output].json = "object" (JSON mode) needs the word "JSON" in the prompt (system or user); '
                "the service answers 400 without it"
            )
        return
    assert fmt.schema is not None
    problems = strict_problems(fmt.schema)
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise SpecError(f"{fmt.source}: the schema breaks strict structured-output rules:\n  {shown}{more}")


def strict_problems(schema: Mapping[str, Any]) -> list[str]:
    """Every strict-mode rule the schema breaks, each naming the place (``#/properties/rows``)."""
    walk = _Walk(schema)
    if schema.get("type") != "object" or "anyOf" in schema:
        walk.problems.append('#: the root must be {"type": "object"} (not anyOf, not another type)')
    walk.node(schema, "#", 0)
    if walk.properties > MAX_PROPERTIES:
        walk.problems.append(f"#: {walk.properties} object properties in all, over the limit of {MAX_PROPERTIES}")
    return walk.problems


class _Walk:
    """One pass over a schema, collecting problems; each ``$ref`` target is walked once."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.problems: list[str] = []
        self.properties = 0
        self._seen_refs: set[str] = set()

    def node(self, node: Any, where: str, depth: int) -> None:
        if not isinstance(node, Mapping):
            self.problems.append(f"{where}: a schema must be an object")
            return
        for key in node:
            if key not in ALLOWED_KEYWORDS:
                self.problems.append(f"{where}: keyword {key!r} is not supported in strict mode")
        self._type(node, where)
        if "$ref" in node:
            self._ref(node["$ref"], where, depth)
        for i, sub in enumerate(node.get("anyOf") or []):
            self.node(sub, f"{where}/anyOf/{i}", depth)
        if "items" in node:
            self.node(node["items"], f"{where}/items", depth)
        if "properties" in node or _types(node) & {"object"}:
            self._object(node, where, depth)
        enum = node.get("enum")
        if isinstance(enum, list) and len(enum) > MAX_ENUM_VALUES:
            self.problems.append(f"{where}: {len(enum)} enum values, over the limit of {MAX_ENUM_VALUES}")

    def _type(self, node: Mapping[str, Any], where: str) -> None:
        if "type" not in node and not ({"$ref", "anyOf", "enum", "const"} & set(node)):
            self.problems.append(f"{where}: no type (give type, enum, anyOf or $ref)")
        bad = sorted(t for t in _types(node) if t not in _TYPES)
        if bad:
            self.problems.append(f"{where}: unknown type {', '.join(bad)}")

    def _object(self, node: Mapping[str, Any], where: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.problems.append(f"{where}: objects nested over {MAX_DEPTH} levels deep")
            return
        props = node.get("properties") or {}
        self.properties += len(props)
        if node.get("additionalProperties") is not False:
            self.problems.append(f"{where}: additionalProperties must be false")
        missing = [name for name in props if name not in (node.get("required") or [])]
        if missing:
            self.problems.append(f"{where}: every property must be required; missing {', '.join(missing)}")
        for name, sub in props.items():
            self.node(sub, f"{where}/properties/{name}", depth + 1)

    def _ref(self, ref: Any, where: str, depth: int) -> None:
        target = resolve_ref(self.root, ref)
        if target is None:
            self.problems.append(f"{where}: $ref {ref!r} does not resolve inside the schema")
        elif ref not in self._seen_refs:  # recursion ("#" or a $defs entry naming itself) is allowed
            self._seen_refs.add(ref)
            self.node(target, str(ref), depth)


def resolve_ref(root: Mapping[str, Any], ref: Any) -> Any:
    """The schema a local ``$ref`` ("#", "#/$defs/row") points at, or None when it does not resolve."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node: Any = root
    for raw in [p for p in ref[1:].split("/") if p]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _types(node: Mapping[str, Any]) -> set[str]:
    t = node.get("type")
    return {t} if isinstance(t, str) else {x for x in t if isinstance(x, str)} if isinstance(t, list) else set()
