"""Issue 13, items 8-9: manifests as pandas, polars and DuckDB write them are accepted.

pandas turns an integer column with nulls into float64 (and may write ids as floats); a float column
in an integer role is accepted when every value is whole or null, and refused with the row number
otherwise. ``detail`` is accepted in any case and used lower-case. End to end through the emulator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import EmbeddedEmulator
from tests.support import Sample
from tests.test_run import chat_requests

MAX_TOKENS = [7, None, 9, None]  # null: the job's default (50)
DETAILS = ["LOW", "High", "auto", None]


def with_pandas(s: Sample, rows: dict[str, list[Any]]) -> None:
    pd.DataFrame(rows).to_parquet(s.manifest)  # max_tokens with nulls becomes float64


def with_pandas_float_ids(s: Sample, rows: dict[str, list[Any]]) -> None:
    frame = pd.DataFrame({**rows, "id": [float(i) for i in range(4)], "max_tokens": [7.0, 8.0, 9.0, 10.0]})
    frame.to_parquet(s.manifest)  # no nulls, but floats all the same


def with_polars(s: Sample, rows: dict[str, list[Any]]) -> None:
    frame = pl.DataFrame(rows).with_columns(pl.col("max_tokens").cast(pl.Float64))
    frame.write_parquet(s.manifest)


def with_duckdb(s: Sample, rows: dict[str, list[Any]]) -> None:
    frame = pd.DataFrame(rows)  # noqa: F841 - read by DuckDB's replacement scan
    duckdb.sql(
        "SELECT CAST(id AS DOUBLE) AS id, image, detail, CAST(max_tokens AS DOUBLE) AS max_tokens FROM frame"
    ).write_parquet(str(s.manifest))


WRITERS: dict[str, Callable[[Sample, dict[str, list[Any]]], None]] = {
    "pandas-nulls": with_pandas,
    "pandas-float-ids": with_pandas_float_ids,
    "polars": with_polars,
    "duckdb": with_duckdb,
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_manifests_written_by_real_tools_run(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], writer: str
) -> None:
    s = Sample(tmp_path, 4)
    rows: dict[str, list[Any]] = {"id": list(range(4)), "image": s.images, "detail": DETAILS, "max_tokens": MAX_TOKENS}
    WRITERS[writer](s, rows)
    types = {f.name: str(f.type) for f in pq.read_schema(s.manifest)}
    assert types["max_tokens"] == "double"
    assert main(["run", str(s.job(emulator.url)), "--no-progress"]) == 0
    out = pq.read_table(tmp_path / "out/results.parquet").to_pylist()
    assert [r["status"] for r in out] == ["ok"] * 4
    assert [r["detail_used"] for r in out] == ["low", "high", "auto", "auto"]
    limits = [7, 8, 9, 10] if writer == "pandas-float-ids" else [7, 50, 9, 50]
    assert [r["completion_tokens"] for r in out] == limits
    assert len(chat_requests(emulator)) == 4


def test_a_float_that_is_not_whole_is_refused_with_its_row(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 4)
    pd.DataFrame({"id": range(4), "image": s.images, "max_tokens": [7.0, None, 12.5, 9.0]}).to_parquet(s.manifest)
    assert main(["run", str(s.job(emulator.url)), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "column 'max_tokens' row 2 holds 12.5, not a whole number" in err
    assert chat_requests(emulator) == []
