"""Issue 13, item 18: ``batch report --errors [CODE...]`` lists the rows that are not ok."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch.cli import main
from batch.emulator import EmbeddedEmulator, Fault
from tests.support import Sample


@pytest.fixture
def result(tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]) -> tuple[Path, Sample]:
    """9 rows: 1 missing image (refused before sending), 1 filtered by the service, 1 a 400."""
    s = Sample(tmp_path, 9)
    (tmp_path / s.images[2]).unlink()
    emulator.set_faults(
        [Fault("content-filter-prompt", match=s.digests[5][:12]), Fault("413", match=s.digests[7][:12])]
    )
    assert main(["run", str(s.job(emulator.url)), "--no-progress"]) == 0
    return tmp_path / "out/results.parquet", s


def test_plain_listing_of_every_row_not_ok(result: tuple[Path, Sample], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = result
    capsys.readouterr()
    assert main(["report", str(path), "--errors"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "row\tid\tstatus\terror_code\tattempts\tmessage"
    rows = [line.split("\t") for line in lines[1:-1]]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("2", "row-2", "error", "image_not_found"),
        ("5", "row-5", "filtered", "content_filter"),
        ("7", "row-7", "error", "request_too_large"),
    ]
    assert "image file not found" in rows[0][5] and rows[0][4] == "0"
    assert lines[-1] == "3 row(s) not ok"


def test_json_and_a_code_filter(result: tuple[Path, Sample], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = result
    capsys.readouterr()
    assert main(["report", str(path), "--errors", "request_too_large", "image_not_found", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["row"], d["id"], d["error_code"]) for d in data] == [
        (2, "row-2", "image_not_found"),
        (7, "row-7", "request_too_large"),
    ]
    assert set(data[0]) == {"row", "id", "status", "error_code", "error_message", "attempts"}
    assert data[1]["attempts"] >= 1
    assert main(["report", str(path), "--errors", "timeout", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_not_a_result_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = Sample(tmp_path, 2)
    assert main(["report", str(s.manifest), "--errors"]) == 2
    assert "not a result file" in capsys.readouterr().err
