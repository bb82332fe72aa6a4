"""``response_format`` as the service handles it: JSON mode, and structured outputs (strict JSON Schema).

The emulator's own reading, written apart from the client's preflight so each checks the other:

- ``{"type": "json_object"}`` needs the word "json" (any case) in some message, else 400;
- ``{"type": "json_schema", "json_schema": {"name", "strict": true, "schema"}}``: a strict schema
  must have an object root, ``additionalProperties: false`` and every property in ``required`` on
  each object, at most 100 properties and 5 levels of objects below the root, only the supported
  keywords, and ``$ref`` that resolve; else 400 ``invalid_json_schema`` naming the place, in the
  service's error shape;
- the answer (:func:`generate`) is JSON that conforms to the schema, seeded from the request's
  images (row i's data differs from row j's) and plausible for each field (dates, amounts,
  currencies, references by property name); JSON mode answers a small object;
- the schema is billed as the tokens of its compact JSON text (``separators=(",", ":")``), an
  assumption: the service's docs do not say.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .answers import Answer, ReceivedImage
from .errors import ApiError, bad_request
from .tokens import Tokenizer

__all__ = [
    "ANSWER_FAULTS",
    "REFUSAL_TEXT",
    "ResponseFormat",
    "alter_answer",
    "generate",
    "parse_response_format",
    "structured_answer",
]

#: Fault kinds that change the answer itself (see :func:`alter_answer`).
ANSWER_FAULTS = frozenset({"refusal", "non-json-answer", "schema-drift"})
REFUSAL_TEXT = "I'm sorry, but I can't help with extracting information from this image."

_KEYWORDS = frozenset(
    "type properties required additionalProperties items enum const anyOf $ref $defs definitions "
    "description title $schema $id $comment default examples".split()
)
_WORDS = ("payment", "transfer", "deposit", "card purchase", "interest", "fee", "salary", "refund", "utilities")


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    kind: str  # "json_object" | "json_schema"
    schema: Mapping[str, Any] | None
    schema_text: str  # compact JSON of the schema ("" in JSON mode): what is billed


def parse_response_format(body: Mapping[str, Any], texts: list[str]) -> ResponseFormat | None:
    """The body's response_format, checked; None when absent or ``{"type": "text"}``."""
    rf = body.get("response_format")
    if rf is None:
        return None
    if not isinstance(rf, Mapping) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise bad_request(
            "invalid_value",
            "Invalid 'response_format': expected type 'text', 'json_object' or 'json_schema'.",
            param="response_format",
        )
    if rf["type"] == "text":
        return None
    if rf["type"] == "json_object":
        if not any("json" in t.lower() for t in texts):
            raise bad_request(
                "invalid_request_error",
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                param="messages",
            )
        return ResponseFormat("json_object", None, "")
    js = rf.get("json_schema")
    if not isinstance(js, Mapping) or not isinstance(js.get("name"), str) or not isinstance(js.get("schema"), Mapping):
        raise bad_request(
            "invalid_value",
            "Invalid 'response_format.json_schema': expected an object with 'name' and 'schema'.",
            param="response_format.json_schema",
        )
    schema = js["schema"]
    if js.get("strict") is True:
        _strict(js["name"], schema)
    return ResponseFormat("json_schema", schema, json.dumps(schema, separators=(",", ":")))


def _strict(name: str, schema: Mapping[str, Any]) -> None:
    problem = _first_problem(schema, schema, (), 0, set())
    if problem is None and schema.get("type") != "object":
        problem = ((), "the root schema must be of type 'object' (not anyOf).")
    if problem is None and _count_properties(schema, schema, set()) > 100:
        problem = ((), "a schema may have at most 100 object properties in total.")
    if problem is not None:
        where, what = problem
        raise ApiError(
            400,
            "invalid_json_schema",
            f"Invalid schema for response_format '{name}': In context={where!r}, {what}",
            extra={"type": "invalid_request_error", "param": "response_format"},
        )


def _first_problem(
    node: Any, root: Mapping[str, Any], where: tuple[str, ...], depth: int, refs: set[str]
) -> tuple[tuple[str, ...], str] | None:
    if not isinstance(node, Mapping):
        return where, "a schema must be an object."
    extra = sorted(set(node) - _KEYWORDS)
    if extra:
        return where, f"'{extra[0]}' is not permitted."
    if "$ref" in node:
        ref = node["$ref"]
        target = _resolve(root, ref)
        if target is None:
            return where, f"reference '{ref}' can't be resolved."
        if ref not in refs:
            refs.add(ref)
            found = _first_problem(target, root, where, depth, refs)
            if found:
                return found
    types = node.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types) or "properties" in node
    if is_object:
        if depth > 5:
            return where, "objects may be nested at most 5 levels deep."
        if node.get("additionalProperties") is not False:
            return where, "'additionalProperties' is required to be supplied and to be false."
        props = node.get("properties") or {}
        missing = [k for k in props if k not in (node.get("required") or [])]
        if missing:
            return (
                where,
                "'required' is required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'.",
            )
        for key, sub in props.items():
            found = _first_problem(sub, root, (*where, "properties", key), depth + 1, refs)
            if found:
                return found
    for i, sub in enumerate(node.get("anyOf") or []):
        found = _first_problem(sub, root, (*where, "anyOf", str(i)), depth, refs)
        if found:
            return found
    if "items" in node:
        return _first_problem(node["items"], root, (*where, "items"), depth, refs)
    return None


def _count_properties(node: Any, root: Mapping[str, Any], refs: set[str]) -> int:
    if not isinstance(node, Mapping):
        return 0
    n = 0
    ref = node.get("$ref")
    if isinstance(ref, str) and ref not in refs:
        refs.add(ref)
        n += _count_properties(_resolve(root, ref), root, refs)
    props = node.get("properties") or {}
    n += len(props) + sum(_count_properties(v, root, refs) for v in props.values())
    n += sum(_count_properties(v, root, refs) for v in node.get("anyOf") or [])
    return n + _count_properties(node.get("items"), root, refs)


def _resolve(root: Mapping[str, Any], ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node: Any = root
    for part in filter(None, ref[1:].split("/")):
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def structured_answer(
    fmt: ResponseFormat, images: list[ReceivedImage], texts: list[str], tokenizer: Tokenizer, seed: int
) -> Answer:
    """The full answer to a request with a response_format, seeded by its images (else its texts)."""
    key = "|".join(im.info.sha256 for im in images) if images else "|".join(texts)
    text = generate(fmt, f"{seed}|{key}")
    return Answer(text, tuple(tokenizer.encode(text)), tokenizer)


def generate(fmt: ResponseFormat, seed: str) -> str:
    """The answer's JSON text: deterministic for ``seed``, conforming to the schema."""
    rng = random.Random(seed)
    if fmt.schema is None:
        return json.dumps({"answer": "an image", "tag": seed[-8:]})
    return json.dumps(_value(fmt.schema, fmt.schema, rng, "", 0), ensure_ascii=False)


def _value(node: Mapping[str, Any], root: Mapping[str, Any], rng: random.Random, name: str, depth: int) -> Any:
    if "$ref" in node:
        target = _resolve(root, node["$ref"])
        return _value(target, root, rng, name, depth + 1) if depth < 8 else None
    if "enum" in node:
        return rng.choice(node["enum"])
    if "const" in node:
        return node["const"]
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"] or node["anyOf"]
        return _value(branches[0] if depth >= 6 else rng.choice(branches), root, rng, name, depth + 1)
    t = node.get("type")
    types = [t] if isinstance(t, str) else list(t or ["string"])
    real = [x for x in types if x != "null"] or ["null"]
    kind = real[0]
    if kind == "object":
        props = node.get("properties") or {}
        return {k: _value(v, root, rng, k, depth + 1) for k, v in props.items()}
    if kind == "array":
        items = node.get("items") or {"type": "string"}
        return [_value(items, root, rng, name, depth + 1) for _ in range(rng.randint(1, 3) if depth < 6 else 0)]
    return _scalar(kind, name.lower(), rng)


def _scalar(kind: str, name: str, rng: random.Random) -> Any:
    if kind == "integer":
        return rng.randint(1, 9999 if "number" in name or "count" in name else 99)
    if kind == "number":
        return round(rng.uniform(-2500, 5000) if "amount" in name else rng.uniform(0, 20000), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if "date" in name or "period" in name or name.endswith("_at"):
        return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if "currency" in name:
        return rng.choice(["USD", "EUR", "GBP", "CHF"])
    if "account" in name or "iban" in name:
        return "".join(str(rng.randint(0, 9)) for _ in range(10))
    if "reference" in name or name.endswith("_id") or name == "id":
        return f"REF-{rng.randint(100000, 999999)}"
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))


def alter_answer(kind: str, choice: dict[str, Any]) -> str:
    """A fault on the answer, in place; returns the finish reason. ``refusal``: ``message.refusal``
    set and no content; ``non-json-answer``: free text (a server that ignores response_format);
    ``schema-drift``: the JSON object without its first property (a model off its schema)."""
    message = choice["message"]
    if kind == "refusal":
        message["content"], message["refusal"] = None, REFUSAL_TEXT
    elif kind == "non-json-answer":
        message["content"] = "Here is what the statement shows: " + str(message.get("content") or "")[:80]
    elif kind == "schema-drift":
        try:
            data = json.loads(message.get("content") or "")
        except ValueError:
            data = None
        if isinstance(data, dict) and data:
            data.pop(next(iter(data)))
        message["content"] = json.dumps(data)
    choice["finish_reason"] = "stop"
    return "stop"
