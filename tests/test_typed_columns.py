"""A JSON Schema as Arrow types, and typed answers through the journal, the parts and assembly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batch.core import OutputFormat
from batch.core.records import Answer, Failure, Outcome, Usage
from batch.ledger import arrow_type, result_layout
from batch.ledger.store import ResultStore
from tests.test_results import manifest
from tests.test_structured import SCHEMA


def test_types_follow_the_schema() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": ["number", "null"]},
            "flag": {"type": "boolean"},
            "level": {"enum": ["low", "high"]},
            "code": {"enum": [1, 2, None]},
            "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "mixed": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "free": {"type": "object", "properties": {}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "tree": {"$ref": "#/$defs/node"},
        },
        "$defs": {
            "node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}
        },
    }
    t = arrow_type(schema)
    kinds = {f.name: (str(f.type), f.nullable) for f in t}
    assert kinds["n"] == ("int64", False) and kinds["x"] == ("double", True) and kinds["flag"] == ("bool", False)
    assert kinds["level"] == ("string", False) and kinds["code"] == ("int64", True)
    assert kinds["maybe"] == ("string", True) and kinds["mixed"] == ("string", False)
    assert kinds["free"] == ("string", False) and kinds["tags"][0] == "list<item: string not null>"
    # The recursive reference ends as JSON text where it recurs.
    assert str(t.field("tree").type) == "struct<kids: list<item: string> not null>"


def test_flatten_adds_the_top_level_properties() -> None:
    fmt = OutputFormat("json_schema", "s.json", SCHEMA, "statement", flatten=True)
    layout = result_layout(fmt)
    assert layout.result.names[-6:] == ["data", "account_number", "period_end", "total", "rows", "kind"]
    assert (
        layout.fingerprint is not None
        and layout.fingerprint != result_layout(OutputFormat("json_schema", "s.json", SCHEMA)).fingerprint
    )
    assert result_layout(None).fingerprint is None and "data" not in result_layout(None).result.names


def test_typed_answers_survive_a_crash_through_the_journal(tmp_path: Path) -> None:
    m = manifest(tmp_path, 3)
    out = tmp_path / "r.parquet"
    layout = result_layout(OutputFormat("json_schema", "s.json", SCHEMA, "statement"))
    data = {
        "account_number": "12",
        "period_end": None,
        "total": 5,
        "rows": [{"date": "d", "amount": 1, "count": 2, "paid": True}],
        "kind": "savings",
    }
    store = ResultStore(out, m.check(), layout=layout, flush_rows=100, flush_seconds=100)
    store.open()
    store.add(Outcome(0, "ok", answer=Answer('{"…": 1}', "stop", Usage(1, 1, 2), "gpt-4o", data)))
    store.add(
        Outcome(1, "refused", answer=Answer(None, "stop", Usage(1, 0, 1), "gpt-4o"), error=Failure("refused", "no"))
    )
    store.add(
        Outcome(
            2, "error", answer=Answer("{", "length", Usage(1, 1, 2), "gpt-4o"), error=Failure("truncated_json", "cut")
        )
    )
    store._journal.take()  # killed here: the file closed, as the OS does; nothing but the journal on disk
    again = ResultStore(out, m.check(), layout=layout)
    assert again.open() == 3
    again.assemble(m)
    rows = pq.read_table(out).to_pylist()
    assert rows[0]["data"] == {**data, "total": 5.0, "rows": [{"date": "d", "amount": 1.0, "count": 2, "paid": True}]}
    assert rows[1]["data"] is None and rows[1]["status"] == "refused" and rows[2]["data"] is None
    assert pq.read_schema(out).field("data").type.field("total").type == pa.float64()
