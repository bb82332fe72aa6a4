"""Issue 13, item 15: a model the tool has no rules for is described in an extra catalogue file,
passed with ``--catalogue FILE`` or ``[endpoint].catalogue``; the advice names that option."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import EmbeddedEmulator
from tests.support import Sample
from tests.test_run import chat_requests

GPT9 = """
[models."gpt-9"]
tokenizer = "o200k_base"
max_images = 10
default_max_output = 4096
image = { rule = "tile", base = 100, per_tile = 200 }
"""
PRICE = """
[prices."gpt-9"]
input = 5.0
output = 20.0
source = "a test's own figure"
date = "2026-12-03"
"""


def test_unknown_model_advice_names_the_option(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 2)
    assert main(["run", str(s.job(emulator.url, model="gpt-9")), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'gpt-9'" in err and "--catalogue FILE (or [endpoint].catalogue in the job)" in err
    assert chat_requests(emulator) == []


def test_catalogue_from_the_command_line_and_the_job(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 3)
    (tmp_path / "models.toml").write_text(GPT9)
    (tmp_path / "prices.toml").write_text(PRICE)
    job = s.job(emulator.url, model="gpt-9")
    assert main(["run", str(job), "--no-progress", "--catalogue", str(tmp_path / "models.toml")]) == 0
    out = pq.read_table(tmp_path / "out/results.parquet").to_pylist()
    assert [r["status"] for r in out] == ["ok"] * 3
    # gpt-9's own rule (base 100, 200 a tile) priced the images, not gpt-4o's (85, 170)
    assert {r["estimated_image_tokens"] % 100 for r in out} == {0}

    text = job.read_text().replace('model = "gpt-9"', 'model = "gpt-9"\ncatalogue = "models.toml"')
    job.write_text(text)
    capsys.readouterr()
    assert main(["estimate", str(job), "--json", "--prices", str(tmp_path / "prices.toml"), "--compare", "gpt-4o"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["catalogue_model"] == "gpt-9"
