"""Issue 13, item 7: ``batch estimate`` skips exactly the rows the run refuses before sending,
truncated images included (the run's quick structural check), unless told to read headers only."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import EmbeddedEmulator
from tests.support import Sample


def damaged_sample(tmp_path: Path) -> Sample:
    s = Sample(tmp_path, 9)  # PNG, JPEG, WebP in turn
    for i in (1, 4):  # two JPEGs cut short: their headers are whole
        jpeg = tmp_path / s.images[i]
        jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size * 2 // 3])
    (tmp_path / s.images[6]).unlink()
    return s


def test_estimate_skips_what_the_run_refuses(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = damaged_sample(tmp_path)
    job = s.job(emulator.url)
    capsys.readouterr()
    assert main(["estimate", str(job), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["run", str(job), "--no-progress"]) == 0
    out = pq.read_table(tmp_path / "out/results.parquet", columns=["status", "error_code"]).to_pylist()
    refused: dict[str, int] = {}
    for r in out:
        if r["status"] == "error":
            refused[r["error_code"]] = refused.get(r["error_code"], 0) + 1
    assert refused == {"image_corrupt": 2, "image_not_found": 1}
    assert report["skipped"] == refused
    assert report["total"]["rows"] == 6
    assert report["images"]["structure_checked"] == 6


def test_headers_only_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = damaged_sample(tmp_path)
    capsys.readouterr()
    assert main(["estimate", str(s.job(None)), "--headers-only"]) == 0
    out = capsys.readouterr().out
    assert "headers only: a truncated file may be counted as sendable" in out
    assert "8 to send, 1 skipped" in out
