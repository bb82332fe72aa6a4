"""Issue 13, items 10-14 and 16: what a run says while it runs and when it ends.

The bar shows error and filtered rows and labels its tokens as reserved at admission; off a terminal
it prints plain lines, never ``\\r`` redraws; the summary takes one stream and one format whether the
run finished or stopped; a resumed run shows the output's total spend; bad arguments say what is
allowed; the embedded emulator is announced only when something will be sent.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.core import Failure, Outcome
from batch.emulator import EmbeddedEmulator, Fault
from batch.ledger.schema import TOOL_ERROR_CODES
from batch.run.progress import ProgressBar, Tally
from tests.support import Sample
from tests.test_run import chat_requests


def run(job: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["run", str(job), *args])
    got = capsys.readouterr()
    return code, got.out, got.err


def test_plain_progress_lines_count_errors_and_filtered_rows_off_a_terminal() -> None:
    stream = io.StringIO()  # not a terminal, like a log file
    tally = Tally(4)
    bar = ProgressBar(4, 0, stream=stream, interval_s=0.0)
    for o in (
        Outcome(0, "ok"),
        Outcome(1, "error", error=Failure("image_not_found", "gone")),
        Outcome(2, "filtered", error=Failure("content_filter", "no")),
        Outcome(3, "error", error=Failure("timeout", "slow")),
    ):
        tally.add(o)
        bar.advance(1, tokens_per_min=1500.0, tpm=30000, tally=tally)
    bar.close()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[3].startswith("progress: 4/4 rows (100%)")
    assert "errors 2 filtered 1" in lines[3]
    assert "reserved 1.5k/30k tok/min" in lines[3]


def test_a_run_into_a_log_prints_plain_lines_with_errors(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 6)
    for i in (1, 4):
        (tmp_path / s.images[i]).unlink()
    code, out, err = run(s.job(emulator.url), capsys)  # progress on; capsys' stderr is no terminal
    assert code == 0 and out == ""
    assert "\r" not in err
    assert re.search(r"^progress: 6/6 rows \(100%\), .*errors 2 filtered 0 reserved .* tok/min", err, re.M), err


def test_summary_is_on_stderr_in_one_format_finished_or_stopped(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 4)
    code, out, err = run(s.job(emulator.url, out="a.parquet"), capsys, "--no-progress")
    assert (code, out) == (0, "") and err.startswith("rows: 4 in manifest")
    emulator.set_faults([Fault("401")])
    code, out, err = run(s.job(emulator.url, out="b.parquet"), capsys, "--no-progress")
    assert (code, out) == (1, "") and err.startswith("rows: 4 in manifest"), err
    assert "batch: rows" not in err and "stopped early:" in err


def test_a_resumed_run_shows_the_spend_of_every_run_on_the_output(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 6)
    job = s.job(emulator.url)
    image = tmp_path / s.images[3]
    data = image.read_bytes()
    image.unlink()
    run(job, capsys, "--no-progress")
    image.write_bytes(data)
    code, _, err = run(job, capsys, "--no-progress", "--retry-errors", "image_not_found")
    assert code == 0
    result = pq.read_table(tmp_path / "out/results.parquet", columns=["prompt_tokens", "completion_tokens"])
    # gpt-4o: $2.50 in, $10.00 out per 1M tokens; every row's billed usage is in the result file
    total = sum(r["prompt_tokens"] * 2.5e-6 + r["completion_tokens"] * 10e-6 for r in result.to_pylist())
    now = re.search(r"^cost now: \$([0-9.]+)", err, re.M)
    assert now is not None and float(now.group(1)) < total
    assert f"cost of this output, all runs: ${total:.4f} at standard prices" in err
    assert "tokens billed now:" in err


def test_unknown_retry_error_code_lists_the_known_ones(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 4)
    (tmp_path / s.images[0]).unlink()
    job = s.job(emulator.url)
    assert run(job, capsys, "--no-progress")[0] == 0
    emulator.reset()
    code, _, err = run(job, capsys, "--no-progress", "--retry-errors", "bogus_code")
    assert code == 2 and chat_requests(emulator) == []
    assert "unknown error code(s) bogus_code" in err
    assert "image_not_found (1)" in err and "image_corrupt" in err and "timeout" in err


def test_unknown_flag_after_run_prints_runs_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "job.toml", "--no-such-flag"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: batch run ") and "unrecognized arguments: --no-such-flag" in err


def test_embedded_emulator_is_announced_only_when_rows_will_be_sent(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 3)
    job = s.job(None)  # no endpoint: the embedded emulator
    good = s.manifest.read_bytes()
    pq.write_table(pa.table({"id": [1, 1], "image": ["a.png", "b.png"]}), s.manifest)
    code, _, err = run(job, capsys, "--no-progress")
    assert code == 2 and "duplicate ids" in err and "embedded emulator" not in err
    s.manifest.write_bytes(good)
    code, _, err = run(job, capsys, "--no-progress")
    assert code == 0 and "using the embedded emulator at" in err
    code, _, err = run(job, capsys, "--no-progress")  # a rerun with nothing left to send
    assert code == 0 and "embedded emulator" not in err and "3 already done" in err


def test_the_tool_error_codes_list_matches_the_source() -> None:
    """Every error code the client writes (``code="..."``, ``code = "..."``) is in the list the
    --retry-errors check offers, and the list names no code the source has lost."""
    root = Path(__file__).resolve().parents[1] / "batch"
    found: set[str] = set()
    for path in root.rglob("*.py"):
        if "emulator" in path.parts:
            continue  # the foreign service's codes are its own
        found |= set(re.findall(r'\bcode ?= ?"([a-z_]+)"', path.read_text()))
        found |= set(re.findall(r'Failure\("([a-z_]+)"', path.read_text()))
    found.add("transport_error")  # ApiError's default, written as a fallback expression
    assert found == TOOL_ERROR_CODES
