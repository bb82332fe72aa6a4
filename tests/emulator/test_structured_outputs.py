"""The emulator's response_format: its own strict-mode check (400 in the service's shape), JSON mode's
word rule, schema-conforming answers that depend on the image, cut-off JSON at max_tokens, the schema
billed as its compact JSON's tokens, and the openai SDK parsing its structured answers."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from emulator_helpers import API_VERSION, KEY, Caller, azure_path, chat_body, data_url, image_part, make_image

from batch.emulator import EmbeddedEmulator, Fault
from batch.tokens import get_encoding

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["account_number", "period_end", "currency", "rows", "total", "kind"],
    "properties": {
        "account_number": {"type": "string"},
        "period_end": {"type": ["string", "null"]},
        "currency": {"type": "string"},
        "rows": {"type": "array", "items": {"$ref": "#/$defs/row"}},
        "total": {"type": "number"},
        "kind": {"enum": ["checking", "savings"]},
    },
    "$defs": {
        "row": {
            "type": "object",
            "additionalProperties": False,
            "required": ["date", "amount", "paid"],
            "properties": {"date": {"type": "string"}, "amount": {"type": "number"}, "paid": {"type": "boolean"}},
        }
    },
}


def schema_format(schema: dict[str, Any], name: str = "statement") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


async def ask(caller: Caller, seed: int, **extra: Any) -> tuple[int, Any]:
    img = make_image(80, 60, seed=seed)
    status, _, body = await caller.post(azure_path(), chat_body(image_part(data_url(img)), **extra))
    return status, body


async def test_answers_follow_the_schema_and_differ_per_image(caller: Caller) -> None:
    answers = []
    for seed in range(4):
        status, body = await ask(caller, seed, max_tokens=2000, response_format=schema_format(SCHEMA))
        assert status == 200, body
        choice = body["choices"][0]
        assert choice["finish_reason"] == "stop" and choice["message"]["refusal"] is None
        data = json.loads(choice["message"]["content"])
        jsonschema.validate(data, SCHEMA)
        answers.append(data)
    assert len({json.dumps(a, sort_keys=True) for a in answers}) == 4
    again = await ask(caller, 0, max_tokens=2000, response_format=schema_format(SCHEMA))
    assert json.loads(again[1]["choices"][0]["message"]["content"]) == answers[0]  # deterministic
    assert all(len(a["period_end"]) == 10 and a["period_end"][4] == "-" for a in answers)  # a date


async def test_max_tokens_cuts_the_json_short(caller: Caller) -> None:
    status, body = await ask(caller, 1, max_tokens=12, response_format=schema_format(SCHEMA))
    assert status == 200
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 12
    with pytest.raises(ValueError):
        json.loads(choice["message"]["content"])


async def test_the_schema_is_billed_as_its_compact_json(caller: Caller) -> None:
    _, plain = await ask(caller, 2, max_tokens=2000)
    _, shaped = await ask(caller, 2, max_tokens=2000, response_format=schema_format(SCHEMA))
    schema_tokens = len(get_encoding("o200k_base").encode(json.dumps(SCHEMA, separators=(",", ":"))))
    assert shaped["usage"]["prompt_tokens"] - plain["usage"]["prompt_tokens"] == schema_tokens


@pytest.mark.parametrize(
    ("change", "context", "words"),
    [
        (lambda s: s.pop("additionalProperties"), "()", "'additionalProperties' is required"),
        (lambda s: s["required"].remove("total"), "()", "Missing 'total'"),
        (lambda s: s["properties"]["currency"].update(minLength=3), "('properties', 'currency')", "'minLength' is not"),
        (
            lambda s: s["properties"]["rows"].update(items={"$ref": "#/$defs/nope"}),
            "('properties', 'rows', 'items')",
            "can't be resolved",
        ),
        (
            lambda s: s["$defs"]["row"]["properties"]["date"].update(format="date"),
            "('properties', 'rows', 'items', 'properties', 'date')",
            "'format'",
        ),
    ],
)  # fmt: skip
async def test_a_schema_that_breaks_strict_mode_gets_azures_400(
    caller: Caller, change: Any, context: str, words: str
) -> None:
    schema = json.loads(json.dumps(SCHEMA))
    change(schema)
    status, body = await ask(caller, 3, max_tokens=100, response_format=schema_format(schema))
    assert status == 400
    error = body["error"]
    assert error["code"] == "invalid_json_schema" and error["param"] == "response_format"
    assert error["type"] == "invalid_request_error"
    assert f"Invalid schema for response_format 'statement': In context={context}" in error["message"]
    assert words in error["message"]


async def test_too_deep_or_too_wide_is_refused(caller: Caller) -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(7):
        deep = {"type": "object", "additionalProperties": False, "required": ["x"], "properties": {"x": deep}}
    status, body = await ask(caller, 4, max_tokens=100, response_format=schema_format(deep))
    assert status == 400 and "nested at most 5 levels" in body["error"]["message"]
    props = {f"p{i}": {"type": "integer"} for i in range(101)}
    wide = {"type": "object", "additionalProperties": False, "required": list(props), "properties": props}
    status, body = await ask(caller, 4, max_tokens=100, response_format=schema_format(wide))
    assert status == 400 and "at most 100 object properties" in body["error"]["message"]


async def test_json_mode_needs_the_word_json(caller: Caller) -> None:
    status, body = await ask(caller, 5, max_tokens=200, response_format={"type": "json_object"})
    assert status == 400 and "must contain the word 'json'" in body["error"]["message"]
    img = make_image(40, 40, seed=5)
    said = chat_body(
        image_part(data_url(img)), text="Answer in JSON.", max_tokens=200, response_format={"type": "json_object"}
    )
    status, _, body = await caller.post(azure_path(), said)
    assert status == 200 and isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)


def test_the_openai_sdk_parses_structured_answers(emulator: EmbeddedEmulator) -> None:
    openai = pytest.importorskip("openai")
    client = openai.AzureOpenAI(azure_endpoint=emulator.url, api_key=KEY, api_version=API_VERSION)
    img = make_image(50, 50, seed=9)
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Extract."}, image_part(data_url(img))]}],
        max_tokens=2000,
        response_format=schema_format(SCHEMA),  # type: ignore[arg-type]
    )
    message = reply.choices[0].message
    assert message.refusal is None
    jsonschema.validate(json.loads(message.content or ""), SCHEMA)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Extract."}],
            response_format=schema_format({"type": "object", "properties": {"a": {"type": "string"}}}),  # type: ignore[arg-type]
        )
    assert caught.value.code == "invalid_json_schema"


async def test_answer_faults_refusal_free_text_and_schema_drift(emulator: EmbeddedEmulator, caller: Caller) -> None:
    emulator.set_faults([Fault("refusal", count=1)])
    _, body = await ask(caller, 6, max_tokens=2000, response_format=schema_format(SCHEMA))
    message = body["choices"][0]["message"]
    assert message["content"] is None and "can't help" in message["refusal"]
    assert body["choices"][0]["finish_reason"] == "stop"

    emulator.set_faults([Fault("non-json-answer", count=1)])
    _, body = await ask(caller, 6, max_tokens=2000, response_format=schema_format(SCHEMA))
    with pytest.raises(ValueError):
        json.loads(body["choices"][0]["message"]["content"])

    emulator.set_faults([Fault("schema-drift", count=1)])
    _, body = await ask(caller, 6, max_tokens=2000, response_format=schema_format(SCHEMA))
    drifted = json.loads(body["choices"][0]["message"]["content"])
    assert "account_number" not in drifted and "total" in drifted
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(drifted, SCHEMA)
    assert emulator.faults()["hits"] == [1]
