"""Rerunning a finished job with --retry-errors (or [output].retry_errors) re-sends exactly the rows
whose last outcome was one of those errors; the new outcome replaces the old in the result file."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.core.errors import SpecError
from batch.core.overrides import with_overrides
from batch.core.spec import load_spec
from batch.emulator import EmbeddedEmulator
from tests.support import Sample
from tests.test_run import chat_requests


def statuses(path: Path) -> list[tuple[str, str | None]]:
    return [(r["status"], r["error_code"]) for r in pq.read_table(path, columns=["status", "error_code"]).to_pylist()]


def test_only_the_listed_errors_are_sent_again(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 9)
    out = tmp_path / "out/results.parquet"
    job = str(s.job(emulator.url))
    moved = {i: (tmp_path / s.images[i]).read_bytes() for i in (2, 5)}
    for i in moved:
        (tmp_path / s.images[i]).unlink()
    corrupt = tmp_path / s.images[7]
    whole = corrupt.read_bytes()
    corrupt.write_bytes(whole[: len(whole) // 3])

    assert main(["run", job, "--no-progress"]) == 0
    first = statuses(out)
    assert [first[i] for i in (2, 5, 7)] == [
        ("error", "image_not_found"),
        ("error", "image_not_found"),
        ("error", "image_corrupt"),
    ]
    assert sum(st == "ok" for st, _ in first) == 6

    for i, data in moved.items():  # the user fixes the cause
        (tmp_path / s.images[i]).write_bytes(data)
    corrupt.write_bytes(whole)
    emulator.reset()
    assert main(["run", job, "--no-progress"]) == 0  # a plain rerun: nothing to do
    assert chat_requests(emulator) == [] and statuses(out) == first

    capsys.readouterr()
    assert main(["run", job, "--no-progress", "--retry-errors", "image_not_found,timeout"]) == 0
    assert len(chat_requests(emulator)) == 2
    assert "2 that ended in errors sent again" in capsys.readouterr().err
    second = statuses(out)
    assert second[2] == second[5] == ("ok", None) and second[7] == ("error", "image_corrupt")
    assert [second[i] for i in (0, 1, 3, 4, 6, 8)] == [first[i] for i in (0, 1, 3, 4, 6, 8)]

    emulator.reset()
    assert main(["run", job, "--no-progress", "--retry-errors"]) == 0  # every error
    assert len(chat_requests(emulator)) == 1
    assert all(st == "ok" for st, _ in statuses(out))
    ids = pq.read_table(out, columns=["id"]).column(0).to_pylist()
    assert ids == [f"row-{i}" for i in range(9)]  # one row each, in manifest order

    emulator.reset()
    assert main(["run", job, "--no-progress", "--retry-errors"]) == 0
    assert chat_requests(emulator) == []


def test_the_job_file_can_ask_for_it_and_bad_codes_are_refused(tmp_path: Path) -> None:
    s = Sample(tmp_path, 1)
    path = s.job(None)
    path.write_text(path.read_text().replace("[output]\n", '[output]\nretry_errors = ["timeout", "*"]\n'))
    spec = load_spec(path)
    assert spec.output.retry_errors == {"timeout", "*"}
    assert with_overrides(spec, retry_errors=["server_error"]).output.retry_errors == {"timeout", "*", "server_error"}
    with pytest.raises(SpecError, match="--retry-errors"):
        with_overrides(spec, retry_errors=["Not A Code"])
