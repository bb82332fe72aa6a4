"""The result store: parts are atomic, resume reads them, assembly is in manifest order."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.core.errors import LedgerError, ManifestError
from batch.core.records import (
    Answer,
    Failure,
    GroundingLine,
    GroundingSpan,
    Outcome,
    Pages,
    PartAnswer,
    Point,
    Sent,
    Usage,
    Via,
)
from batch.inputs.manifest import Manifest
from batch.ledger.journal import read_journal
from batch.ledger.parts import BUCKET_ROWS, parts_dir_for
from batch.ledger.schema import RESULT_COLUMNS
from batch.ledger.store import ResultStore


def manifest(tmp_path: Path, n: int, name: str = "m.parquet") -> Manifest:
    p = tmp_path / name
    pq.write_table(
        pa.table(
            {
                "id": [f"r{i}" for i in range(n)],
                "image": [f"{i}.png" for i in range(n)],
                "keep": list(range(n)),
            }
        ),
        p,
        row_group_size=30_000,
    )
    return Manifest(p)


def ok(i: int) -> Outcome:
    return Outcome(i, "ok", answer=Answer(f"answer {i}", "stop", Usage(i, 1, i + 1), "gpt-4o"))


def test_resume_reads_parts_and_assembles_in_order(tmp_path: Path) -> None:
    n = BUCKET_ROWS + 5000  # two buckets, rows finishing out of order
    m = manifest(tmp_path, n)
    info = m.check()
    out = tmp_path / "out" / "r.parquet"
    store = ResultStore(out, info)
    assert store.open() == 0
    order = list(range(n - 1, -1, -2)) + list(range(0, n, 2))
    store.write_parts([ok(i) for i in order[: n // 2]])
    # A new store (a resumed run) sees exactly those rows as done.
    again = ResultStore(out, info)
    assert again.open() == n // 2
    assert not again.done[0] and again.done[n - 1]
    again.write_parts([ok(i) for i in order[n // 2 :]])
    again.write_parts([Outcome(3, "error", error=Failure("x", None))])  # a later outcome of a row wins
    assert again.assemble(m) == n
    t = pq.read_table(out)
    assert t.column_names == ["id", "image", "keep", *RESULT_COLUMNS]
    assert t.column("keep").to_pylist() == list(range(n))
    assert t.column("answer")[10].as_py() == "answer 10"
    assert t.column("status")[3].as_py() == "error"
    assert t.column("prompt_tokens")[n - 1].as_py() == n - 1


def test_a_torn_part_is_dropped_and_its_rows_redone(tmp_path: Path) -> None:
    m = manifest(tmp_path, 100)
    out = tmp_path / "r.parquet"
    store = ResultStore(out, m.check())
    store.open()
    store.write_parts([ok(i) for i in range(50)])
    (parts_dir_for(out) / "b000000-000000007.parquet").write_bytes(b"PAR1 torn")
    (parts_dir_for(out) / "b000000-000000008.tmp").write_bytes(b"half")
    again = ResultStore(out, m.check())
    assert again.open() == 50
    assert not (parts_dir_for(out) / "b000000-000000007.parquet").exists()
    assert not list(parts_dir_for(out).glob("*.tmp"))


def test_state_of_another_manifest_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    ResultStore(out, manifest(tmp_path, 10, "a.parquet").check()).open()
    with pytest.raises(LedgerError, match="belongs to a different manifest"):
        ResultStore(out, manifest(tmp_path, 11, "b.parquet").check()).open()


def test_assemble_refuses_incomplete(tmp_path: Path) -> None:
    m = manifest(tmp_path, 10)
    store = ResultStore(tmp_path / "r.parquet", m.check())
    store.open()
    store.write_parts([ok(i) for i in range(9)])
    with pytest.raises(LedgerError, match="1 rows have no outcome"):
        store.assemble(m)


def test_manifest_column_clashing_with_results_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": ["a"], "image": ["x"], "status": ["new"]}), p)
    with pytest.raises(ManifestError, match="status clash"):
        ResultStore(tmp_path / "r.parquet", Manifest(p).check())


def test_flush_due_by_rows(tmp_path: Path) -> None:
    m = manifest(tmp_path, 10)
    store = ResultStore(tmp_path / "r.parquet", m.check(), flush_rows=3, flush_seconds=100)
    store.open()
    store.add(ok(0))
    store.add(ok(1))
    assert not store.flush_due
    store.add(ok(2))
    assert store.flush_due
    store.flush(store.take_buffer())
    assert store.rows_written == 3 and not store.flush_due


def test_journal_makes_every_finished_row_durable_at_once(tmp_path: Path) -> None:
    """A kill between flushes loses nothing that was added: the journal is turned into parts on resume."""
    m = manifest(tmp_path, 20)
    out = tmp_path / "r.parquet"
    store = ResultStore(out, m.check(), flush_rows=1000, flush_seconds=1000)
    store.open()
    for i in range(12):
        store.add(ok(i))
    store.flush(store.take_buffer())  # rows 0..11 in parts, their journal gone
    for i in range(12, 17):
        store.add(ok(i))  # rows 12..16 only in the journal: then the process dies
    assert store._journal.is_open
    store._journal.take()  # the file closed, as the OS does for a killed process
    journal = next(parts_dir_for(out).glob("journal-*.jsonl"))
    with open(journal, "a") as f:
        f.write('{"index": 17, "status": "o')  # a line torn by the kill
    again = ResultStore(out, m.check())
    assert again.open() == 17
    assert again.done[:17].all() and not again.done[17:].any()
    assert not list(parts_dir_for(out).glob("journal-*"))
    again.write_parts([ok(i) for i in range(17, 20)])
    again.assemble(m)
    t = pq.read_table(out)
    assert t.column("answer").to_pylist() == [f"answer {i}" for i in range(20)]


def test_journal_and_parts_keep_every_field(tmp_path: Path) -> None:
    """A row recorded through the journal (a kill before the flush) comes back field for field,
    page answers and page numbers included, and lands in the result file the same way."""
    m = manifest(tmp_path, 2)
    out = tmp_path / "r.parquet"
    polygon = (Point(1.0, 2.0), Point(3.5, 2.0), Point(3.5, 4.0), Point(1.0, 4.0))
    grounding = (GroundingLine("Total 1,234.56", (GroundingSpan("1,234.56", 6, 8, polygon),), page=2),)
    full = Outcome(
        0, "ok", answer=Answer("a", "stop", Usage(5, 2, 7), "gpt-4o"), error=Failure("x", "partly failed"),
        sent=Sent("low", 85, 90, "n"),
        pages=Pages((1, 2), (PartAnswer((1,), "ok", answer="p1"), PartAnswer((2,), "error", error_code="x"))),
        ocr_text="t", grounding=grounding, attempts=2, latency_ms=1.5, request_id="q", completed_at=1_700_000_000.25,
        via=Via("batch", "batch_1"),
        answered_by="gpt-4o @ http://127.0.0.1:1",
    )  # fmt: skip
    expected = {
        "answer": "a", "finish_reason": "stop", "prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
        "status": "ok", "error_code": "x", "error_message": "partly failed", "attempts": 2, "latency_ms": 1.5,
        "request_id": "q", "model": "gpt-4o", "answered_by": "gpt-4o @ http://127.0.0.1:1",
        "detail_used": "low", "estimated_image_tokens": 85,
        "estimated_prompt_tokens": 90, "image_note": "n", "pages_processed": [1, 2],
        "page_answers": [
            {"pages": [1], "status": "ok", "answer": "p1", "finish_reason": None, "prompt_tokens": None,
             "completion_tokens": None, "request_id": None, "ocr_text": None, "error_code": None},
            {"pages": [2], "status": "error", "answer": None, "finish_reason": None, "prompt_tokens": None,
             "completion_tokens": None, "request_id": None, "ocr_text": None, "error_code": "x"},
        ],
        "ocr_text": "t",
        "grounding": [
            {"page": 2, "text": "Total 1,234.56", "spans": [{"text": "1,234.56", "offset": 6, "length": 8,
             "polygon": [{"x": 1.0, "y": 2.0}, {"x": 3.5, "y": 2.0}, {"x": 3.5, "y": 4.0}, {"x": 1.0, "y": 4.0}]}]},
        ],
        "route": "batch", "batch_id": "batch_1",
    }  # fmt: skip
    store = ResultStore(out, m.check(), flush_rows=1000, flush_seconds=1000)
    store.open()
    store.add(full)
    assert store._journal.is_open
    store._journal.take()  # the file closed: killed before the flush
    journal = next(parts_dir_for(out).glob("journal-*.jsonl"))
    assert json.loads(journal.read_text()) == {"index": 0, **expected, "completed_at": 1_700_000_000.25}
    assert read_journal(journal, 2) == [full]  # the typed parts come back as they were
    again = ResultStore(out, m.check())
    assert again.open() == 1
    again.write_parts([ok(1)])
    again.assemble(m)
    row = pq.read_table(out).to_pylist()[0]
    assert row.pop("completed_at").timestamp() == 1_700_000_000.25
    assert {name: row[name] for name in RESULT_COLUMNS if name != "completed_at"} == expected
