"""Preflight of [output].schema / json: every bad schema or job is refused with exit 2, naming the
schema, before anything is sent; one test per rule. And the body the plan composes carries it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch.cli import main
from batch.core import WorkItem, load_spec, lookup_model
from batch.emulator import EmbeddedEmulator
from batch.plan import RequestBuilder
from tests.support import Sample
from tests.test_run import chat_requests
from tests.test_structured import SCHEMA


def run_with(
    tmp_path: Path, emulator: EmbeddedEmulator, schema_text: str | None, extra: str = "", model: str = "gpt-4o"
) -> tuple[int, str]:
    s = Sample(tmp_path, 2)
    if schema_text is not None:
        (tmp_path / "schema.json").write_text(schema_text)
        extra = 'schema = "schema.json"\n' + extra
    job = s.job(emulator.url, extra=extra, model=model)
    code = main(["run", str(job), "--no-progress"])
    assert chat_requests(emulator) == []  # nothing sent
    assert not (tmp_path / "out/results.parquet").exists()
    return code, str(tmp_path / "schema.json")


def changed(edit: Callable[[dict[str, Any]], object]) -> str:
    schema = copy.deepcopy(SCHEMA)
    edit(schema)
    return json.dumps(schema)


def nested(levels: int) -> str:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        node = {"type": "object", "additionalProperties": False, "required": ["x"], "properties": {"x": node}}
    return json.dumps(node)


def wide(n: int) -> str:
    props = {f"p{i}": {"type": "integer"} for i in range(n)}
    return json.dumps({"type": "object", "additionalProperties": False, "required": list(props), "properties": props})


@pytest.mark.parametrize(
    ("schema_text", "words"),
    [
        pytest.param(
            changed(lambda s: s.pop("additionalProperties")),
            "#: additionalProperties must be false",
            id="additional-root",
        ),
        pytest.param(
            changed(lambda s: s["$defs"]["row"].update(additionalProperties=True)),
            "#/$defs/row: additionalProperties must be false",
            id="additional-nested",
        ),
        pytest.param(
            changed(lambda s: s["required"].remove("total")),
            "every property must be required; missing total",
            id="required",
        ),
        pytest.param(nested(7), "nested over 5 levels", id="nesting"),
        pytest.param(wide(101), "101 object properties in all, over the limit of 100", id="property-count"),
        pytest.param(
            changed(lambda s: s["properties"]["account_number"].update(pattern="^[0-9]+$")),
            "keyword 'pattern' is not supported",
            id="keyword-pattern",
        ),
        pytest.param(
            changed(lambda s: s["properties"]["rows"].update(minItems=1)),
            "keyword 'minItems' is not supported",
            id="keyword-minItems",
        ),
        pytest.param(
            changed(lambda s: s["properties"]["period_end"].update(format="date")),
            "keyword 'format' is not supported",
            id="keyword-format",
        ),
        pytest.param(
            changed(lambda s: s["properties"].update(total={"allOf": [{"type": "number"}]})),
            "keyword 'allOf'",
            id="keyword-allOf",
        ),
        pytest.param(
            changed(lambda s: s["properties"]["rows"].update(items={"$ref": "#/$defs/line"})),
            "$ref '#/$defs/line' does not resolve",
            id="ref",
        ),
        pytest.param(
            json.dumps({"anyOf": [{"type": "object"}]}), 'the root must be {"type": "object"}', id="root-anyOf"
        ),
        pytest.param("{not json", "not valid JSON", id="not-json"),
        pytest.param("[1, 2]", "the schema's root must be a JSON object, not list", id="root-not-object"),
    ],
)
def test_a_bad_schema_is_refused_before_sending(
    tmp_path: Path,
    emulator: EmbeddedEmulator,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    schema_text: str,
    words: str,
) -> None:
    code, path = run_with(tmp_path, emulator, schema_text)
    err = capsys.readouterr().err
    assert code == 2, err
    assert path in err and words in err


def test_a_schema_file_not_found(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_with(tmp_path, emulator, None, 'schema = "nowhere.json"\n')
    assert code == 2 and f"schema file not found: {tmp_path / 'nowhere.json'}" in capsys.readouterr().err


def test_a_model_without_structured_outputs_with_images_is_refused(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, path = run_with(tmp_path, emulator, json.dumps(SCHEMA), model="gpt-4-turbo-2024-04-09")
    err = capsys.readouterr().err
    assert code == 2 and path in err
    assert "'gpt-4-turbo' does not take structured outputs or JSON mode on requests with images" in err


def test_json_mode_without_the_word_json_is_refused(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_with(tmp_path, emulator, None, 'json = "object"\n')
    assert code == 2 and 'needs the word "JSON" in the prompt' in capsys.readouterr().err


def test_flatten_without_a_schema_and_both_modes_at_once_are_refused(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_with(tmp_path, emulator, None, "flatten = true\n")
    assert code == 2 and "flatten needs [output].schema" in capsys.readouterr().err
    code, _ = run_with(tmp_path, emulator, json.dumps(SCHEMA), 'json = "object"\n')
    assert code == 2 and "not both" in capsys.readouterr().err


def test_the_body_carries_the_schema_inline_or_from_a_file(tmp_path: Path) -> None:
    s = Sample(tmp_path, 1)
    inline = "[output.schema]\ntype = 'object'\nadditionalProperties = false\nrequired = ['a']\n"
    inline += "[output.schema.properties.a]\ntype = 'string'\n"
    spec = load_spec(s.job(None, extra=inline))
    builder = RequestBuilder(spec, lookup_model("gpt-4o"), None)
    body = json.loads(builder.build(WorkItem(0, "row-0", s.images[0])).body)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "strict": True,
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["a"],
                "properties": {"a": {"type": "string"}},
            },
        },
    }
