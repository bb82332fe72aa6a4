"""Issue 13, item 6: an OCR job's estimate counts the hint (measured on a sample, extrapolated,
labelled as an estimate), and the report names its comparison for what it is (send time)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import EmbeddedEmulator
from batch.ocr.engine import LocalOcr

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(LocalOcr.available() is not None, reason="local OCR needs Tesseract")


def financial_job(tmp_path: Path, url: str) -> Path:
    """The shipped financial sample (PNG pages, a 3-page PDF, a 3-page TIFF) and its job."""
    shutil.copytree(ROOT / "data/financial", tmp_path / "financial")
    text = (ROOT / "jobs/ocr-financial.toml").read_text()
    text = text.replace("../data/financial/manifest.parquet", str(tmp_path / "financial/manifest.parquet"))
    text = text.replace("../out/ocr-financial.parquet", str(tmp_path / "out.parquet"))
    text = text.replace('model = "gpt-4o"', f'model = "gpt-4o"\nurl = "{url}"\napi_key_env = "TEST_API_KEY"')
    job = tmp_path / "ocr.toml"
    job.write_text(text)
    return job


def test_estimate_counts_the_ocr_hint_close_to_the_bill(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    job = financial_job(tmp_path, emulator.url)
    capsys.readouterr()
    assert main(["estimate", str(job), "--json", "--ocr-sample", "3"]) == 0
    est = json.loads(capsys.readouterr().out)
    hint = est["ocr_hint"]
    assert hint["estimated"] is True and hint["sampled_requests"] == 3 and hint["tokens"] > 0
    assert any(n.startswith("OCR hint: an estimate") for n in est["notes"])
    assert main(["run", str(job), "--no-progress"]) == 0
    billed = sum(pq.read_table(tmp_path / "out.parquet", columns=["prompt_tokens"]).column(0).to_pylist())
    estimated = est["total"]["prompt_tokens"]
    assert abs(estimated - billed) / billed < 0.10, (estimated, billed)  # without the hint: about -44 %

    assert main(["estimate", str(job), "--ocr-sample", "0"]) == 0
    assert "OCR hint of 6 requests not counted: --ocr-sample 0" in capsys.readouterr().out

    assert main(["report", str(tmp_path / "out.parquet")]) == 0
    out = capsys.readouterr().out
    assert "Send-time estimate vs billed prompt tokens" in out and "not the figure `batch estimate` printed" in out
