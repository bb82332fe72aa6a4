"""Structured output end to end against the real emulator: typed columns read by pandas, polars and
DuckDB; every outcome (refused, truncated_json, invalid_json, schema_mismatch) recorded once, never
retried, and sent again with --retry-errors; a changed schema refused on resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import EmbeddedEmulator, Fault
from tests.support import Sample
from tests.test_run import chat_requests

SCHEMA: dict[str, Any] = {
    "title": "statement",
    "type": "object",
    "additionalProperties": False,
    "required": ["account_number", "period_end", "total", "rows", "kind"],
    "properties": {
        "account_number": {"type": "string"},
        "period_end": {"type": ["string", "null"]},
        "total": {"type": "number"},
        "rows": {"type": "array", "items": {"$ref": "#/$defs/row"}},
        "kind": {"enum": ["checking", "savings"]},
    },
    "$defs": {
        "row": {
            "type": "object",
            "additionalProperties": False,
            "required": ["date", "amount", "count", "paid"],
            "properties": {
                "date": {"type": "string"},
                "amount": {"type": "number"},
                "count": {"type": "integer"},
                "paid": {"type": "boolean"},
            },
        }
    },
}


def job_with_schema(s: Sample, url: str, *, flatten: bool = False, max_tokens: int = 1500) -> Path:
    (s.root / "schema.json").write_text(json.dumps(SCHEMA))
    extra = 'schema = "schema.json"\n' + ("flatten = true\n" if flatten else "")
    return s.job(url, extra=extra, max_tokens=max_tokens)


def test_typed_columns_read_by_pandas_polars_and_duckdb(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    s = Sample(tmp_path, 6)
    assert main(["run", str(job_with_schema(s, emulator.url, flatten=True)), "--no-progress"]) == 0
    out = tmp_path / "out/results.parquet"
    schema = pq.read_schema(out)
    data = schema.field("data").type
    assert data.field("total").type == pa.float64() and data.field("account_number").type == pa.string()
    row = data.field("rows").type.value_type
    assert row.field("count").type == pa.int64() and row.field("paid").type == pa.bool_()
    assert data.field("kind").type == pa.string()
    assert data.field("period_end").nullable and not data.field("total").nullable
    assert schema.field("total").type == pa.float64()  # flattened beside the struct

    table = pq.read_table(out).to_pylist()
    assert all(r["status"] == "ok" for r in table)
    assert all(json.loads(r["answer"]) == r["data"] for r in table)  # the raw answer stays
    assert len({json.dumps(r["data"], sort_keys=True) for r in table}) == 6  # row i's data is its own
    assert all(r["account_number"] == r["data"]["account_number"] for r in table)

    totals = duckdb.sql(f"SELECT id, data.total, data.rows[1].amount AS first FROM '{out}' ORDER BY id").fetchall()
    assert [t[1] for t in totals] == [r["data"]["total"] for r in sorted(table, key=lambda r: r["id"])]
    assert all(isinstance(t[2], float) for t in totals)
    frame = pl.read_parquet(out)
    assert frame.schema["data"].fields[0].name == "account_number"
    assert frame["data"].struct.field("total").to_list() == [r["data"]["total"] for r in table]
    assert pd.read_parquet(out)["data"].iloc[0]["kind"] in ("checking", "savings")

    est, billed = pq.read_table(out, columns=["estimated_prompt_tokens", "prompt_tokens"]).to_pydict().values()
    assert est == billed  # the schema's tokens counted the same way on both sides


def test_each_outcome_recorded_once_and_sent_again_on_request(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 8, extra={"max_tokens": [None, None, None, None, None, 10, None, None]})
    job = str(job_with_schema(s, emulator.url))
    emulator.set_faults(
        [
            Fault("refusal", match=s.digests[1][:12]),
            Fault("non-json-answer", match=s.digests[2][:12]),
            Fault("schema-drift", match=s.digests[3][:12]),
        ]
    )
    assert main(["run", job, "--no-progress"]) == 0
    out = tmp_path / "out/results.parquet"
    rows = pq.read_table(out).to_pylist()
    got = [(r["status"], r["error_code"]) for r in rows]
    assert got[1] == ("refused", "refused") and "can't help" in rows[1]["error_message"]
    assert got[2] == ("error", "invalid_json")
    assert got[3] == ("error", "schema_mismatch") and "account_number" in rows[3]["error_message"]
    assert got[5] == ("error", "truncated_json") and rows[5]["finish_reason"] == "length"
    assert all(got[i] == ("ok", None) for i in (0, 4, 6, 7))
    assert all(r["attempts"] == 1 for r in rows)  # none retried: each attempt is billed
    assert rows[1]["data"] is None and rows[3]["data"] is None and rows[3]["answer"]
    assert "refused 1" in capsys.readouterr().err  # the summary goes to stderr
    check_report(out, tmp_path / "report.html", capsys)

    emulator.clear_faults()
    emulator.reset()
    codes = "refused,invalid_json,schema_mismatch,truncated_json"
    assert main(["run", job, "--no-progress", "--retry-errors", codes, "--max-tokens", "1500"]) == 0
    assert len(chat_requests(emulator)) == 4
    again = pq.read_table(out, columns=["status", "error_code"]).to_pylist()
    assert [again[i]["status"] for i in (1, 2, 3)] == ["ok"] * 3
    assert again[5]["error_code"] == "truncated_json"  # its own max_tokens column still cuts it


def check_report(out: Path, html: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`batch report`: status counts with refused and the JSON error codes; fields filled, per path."""
    assert main(["report", str(out), "--json", "--html", str(html)]) == 0
    report = json.loads(capsys.readouterr().out)
    statuses = {x["key"]: x["rows"] for x in report["by_status"]}
    assert statuses == {"ok": 4, "refused": 1, "error": 3}
    assert report["error_codes"] == {"invalid_json": 1, "refused": 1, "schema_mismatch": 1, "truncated_json": 1}
    fields = {f["path"]: (f["filled"], f["of"]) for f in report["fields"]["filled"]}
    assert report["fields"]["rows_with_data"] == 4
    assert list(fields)[:4] == ["account_number", "period_end", "total", "rows"]
    assert fields["total"] == (4, 4) and fields["rows[].amount"][0] == fields["rows[].amount"][1] >= 4
    page = html.read_text()
    assert "Schema fields filled" in page and "rows[].amount" in page and ">refused<" in page
    assert main(["report", str(out)]) == 0
    assert "Schema fields filled (4 rows with data" in capsys.readouterr().out


def test_a_changed_schema_is_refused_on_resume(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 3)
    job = job_with_schema(s, emulator.url)
    assert main(["run", str(job), "--no-progress"]) == 0
    changed = json.loads(json.dumps(SCHEMA))
    changed["properties"]["total"] = {"type": "integer"}
    other = tmp_path / "other.json"
    other.write_text(json.dumps(changed))
    emulator.reset()
    capsys.readouterr()
    assert main(["run", str(job), "--no-progress", "--schema", str(other)]) == 2
    assert "other result columns" in capsys.readouterr().err
    assert chat_requests(emulator) == []


def test_json_mode_sends_json_object_and_checks_the_answer_is_json(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    s = Sample(tmp_path, 3)
    job = s.job(emulator.url, extra='json = "object"\n', max_tokens=300)
    job.write_text(job.read_text().replace("Describe the image.", "Describe the image as JSON."))
    assert main(["run", str(job), "--no-progress"]) == 0
    rows = pq.read_table(tmp_path / "out/results.parquet").to_pylist()
    assert all(r["status"] == "ok" and isinstance(json.loads(r["answer"]), dict) for r in rows)
    assert "data" not in rows[0]  # no schema: no typed column


def test_the_shipped_statement_job_writes_typed_columns_for_every_row(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "statements.parquet"
    assert main(["run", str(root / "jobs/extract-statements.toml"), "--no-progress", "--out", str(out)]) == 0
    rows = pq.read_table(out).to_pylist()
    manifest = pq.read_table(root / "data/financial/manifest.parquet")
    assert len(rows) == manifest.num_rows and all(r["status"] == "ok" for r in rows)
    for r in rows:
        assert r["account_number"] == r["data"]["account_number"] and r["currency"] and r["data"]["rows"]
        assert all(isinstance(line["amount"], float) for line in r["data"]["rows"])
        assert r["ocr_text"]  # read by the local OCR and sent as the hint
    assert pq.read_schema(out).field("data").type.field("rows").type.value_type.field("balance").nullable
