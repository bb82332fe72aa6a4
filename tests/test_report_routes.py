"""`batch report` bills each row at the price of the route it took: real runs on the emulator
(online, the Batch API, a batch finished online), a mixed file written with the run's schema, and
an older file without the route columns.

Every billed figure is recomputed here from the Parquet rows and the gpt-4o prices
(batch/data/prices.toml: $2.50 / $10.00 per 1M tokens, Batch $1.25 / $5.00).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.ledger.schema import RESULT_SCHEMA
from batch.report.html import render_html
from batch.report.job import build_report
from tests.support import Sample
from tests.test_batch_route import batch_emulator, batch_state

RATES = {"online": (2.5e-6, 10e-6), "batch": (1.25e-6, 5e-6)}


def cost(rows: list[dict[str, Any]], route: str | None = None) -> float:
    """USD of the rows, each at ``route``'s prices, or at its own route's (``None``)."""
    total = 0.0
    for r in rows:
        rate_in, rate_out = RATES[route or r.get("route") or "online"]
        total += (r["prompt_tokens"] or 0) * rate_in + (r["completion_tokens"] or 0) * rate_out
    return total


def report_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["report", str(path), "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def check_billed(data: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Headline, what-ifs and the per-route lines against the rows' own usage and prices."""
    got = data["total"]["cost_usd"]
    assert got["billed"] == pytest.approx(cost(rows), rel=1e-12)
    assert got["standard"] == pytest.approx(cost(rows, "online"), rel=1e-12)
    assert got["batch"] == pytest.approx(cost(rows, "batch"), rel=1e-12)
    routes = sorted({r.get("route") or "online" for r in rows}, key=["online", "batch"].index)
    assert [x["key"] for x in data["by_route"]] == routes
    for line in data["by_route"]:
        mine = [r for r in rows if (r.get("route") or "online") == line["key"]]
        assert line["rows"] == len(mine)
        assert line["prompt_tokens"] == sum(r["prompt_tokens"] or 0 for r in mine)
        assert line["completion_tokens"] == sum(r["completion_tokens"] or 0 for r in mine)
        assert line["cost_usd"]["billed"] == pytest.approx(cost(mine, line["key"]), rel=1e-12)
    for top in data["top"]:  # each costly row at its own route's prices
        row = next(r for r in rows if r["id"] == top["id"])
        assert top["route"] == (row.get("route") or "online")
        assert top["cost_usd"]["billed"] == pytest.approx(cost([row]), rel=1e-12)
    billed = [t["cost_usd"]["billed"] for t in data["top"]]
    assert billed == sorted(billed, reverse=True)  # ranked by what was billed


def page_keys(path: Path) -> dict[str, str]:
    page = render_html(build_report(path))
    return dict(re.findall(r'data-key="([^"]+)" data-value="([^"]*)"', page))


def test_online_and_batch_runs_are_billed_at_their_prices(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 9)
    with batch_emulator() as emu:
        online = s.job(emu.url, deployment="online", out="out/online.parquet")
        assert main(["run", str(online), "--no-progress"]) == 0
        batch = s.job(emu.url, deployment="bulk", out="out/batch.parquet", extra="[run]\nshard_lines = 4\n")
        assert main(["run", str(batch), "--no-progress", "--route", "batch", "--poll-seconds", "0"]) == 0
        created = len(batch_state(emu).jobs)

    on_path, b_path = tmp_path / "out/online.parquet", tmp_path / "out/batch.parquet"
    on_rows, b_rows = pq.read_table(on_path).to_pylist(), pq.read_table(b_path).to_pylist()
    assert {r["route"] for r in on_rows} == {"online"} and {r["route"] for r in b_rows} == {"batch"}
    assert all(r["prompt_tokens"] for r in on_rows + b_rows)

    on, b = report_json(on_path, capsys), report_json(b_path, capsys)
    check_billed(on, on_rows)
    check_billed(b, b_rows)
    assert on["total"]["cost_usd"]["billed"] == on["total"]["cost_usd"]["standard"] > 0
    assert b["total"]["cost_usd"]["billed"] == b["total"]["cost_usd"]["batch"]
    assert b["total"]["cost_usd"]["batch"] == pytest.approx(b["total"]["cost_usd"]["standard"] / 2)
    assert on["batches"] == 0 and b["batches"] == created == len({r["batch_id"] for r in b_rows}) == 3

    assert main(["report", str(b_path)]) == 0
    out = capsys.readouterr().out
    assert f"billed    ${cost(b_rows):,.4f}: 9 batch row(s) at Batch prices" in out
    assert "batches   3 (distinct batch ids of the batch rows)" in out
    assert "By route (billed: online at standard prices, batch at Batch prices):" in out

    keys = page_keys(b_path)
    assert float(keys["total.cost_usd.billed"]) == b["total"]["cost_usd"]["billed"]
    assert float(keys["by_route.batch.cost_usd.billed"]) == b["by_route"][0]["cost_usd"]["billed"]
    assert keys["batches"] == "3"


def test_a_batch_finished_online_is_priced_per_row(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 12)
    with batch_emulator(batch_seconds=2.0, batch_expire_seconds=0.9) as emu:
        job = s.job(emu.url, deployment="bulk")
        assert (
            main(["run", str(job), "--no-progress", "--route", "batch", "--poll-seconds", "0", "--finish-online"]) == 0
        )
    path = tmp_path / "out/results.parquet"
    rows = pq.read_table(path).to_pylist()
    routes = [r["route"] for r in rows]
    assert 0 < routes.count("online") < 12 and routes.count("batch") == 12 - routes.count("online")
    data = report_json(path, capsys)
    check_billed(data, rows)
    t = data["total"]["cost_usd"]
    assert t["batch"] < t["billed"] < t["standard"]
    assert data["batches"] == 1


def mixed_file(source: Path, path: Path, batch_every: int) -> list[dict[str, Any]]:
    """The rows of a real run with every ``batch_every``-th row marked as sent in one of two batches."""
    schema = pq.read_schema(source)  # the manifest's columns, then the run's RESULT_SCHEMA
    assert schema.remove_metadata().types[-len(RESULT_SCHEMA) :] == RESULT_SCHEMA.types
    rows = pq.read_table(source).to_pylist()
    for i, r in enumerate(rows):
        if i % batch_every == 0:
            r["route"], r["batch_id"] = "batch", f"batch_{i % 2}"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=4)
    return rows


def test_a_mixed_file_is_priced_per_row_and_an_old_file_reads_as_online(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 10)
    with batch_emulator() as emu:
        assert main(["run", str(s.job(emu.url, deployment="online")), "--no-progress"]) == 0
    real = tmp_path / "out/results.parquet"

    mixed = tmp_path / "mixed.parquet"
    rows = mixed_file(real, mixed, 3)
    assert [r["route"] for r in rows].count("batch") == 4
    capsys.readouterr()
    assert main(["report", str(mixed), "--json", "--top", "10"]) == 0  # read in record batches of 4 rows too
    data = json.loads(capsys.readouterr().out)
    check_billed(data, rows)
    assert data["batches"] == 2
    small = build_report(mixed, batch_rows=3)  # record batches that split the routes differently
    assert small.total.cost_billed == pytest.approx(data["total"]["cost_usd"]["billed"], rel=1e-12)
    assert [(x.key, x.rows) for x in small.by_route] == [("online", 6), ("batch", 4)]

    old = tmp_path / "old.parquet"
    table = pq.read_table(mixed)
    pq.write_table(table.drop_columns(["route", "batch_id"]), old)
    data = report_json(old, capsys)
    plain = [{**r, "route": None} for r in rows]
    check_billed(data, plain)
    assert data["total"]["cost_usd"]["billed"] == data["total"]["cost_usd"]["standard"]
    assert [x["key"] for x in data["by_route"]] == ["online"] and data["batches"] == 0
    assert any("no route column" in n and "every row is online" in n for n in data["notes"])
