"""Every fault the emulator can inject, through a real run: what each row gets, what is retried,
what stops the run, and that the key appears in no output, log, state file or message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import EmbeddedEmulator, Fault
from tests.support import API_KEY, Sample

ROWS = 12


def run(s: Sample, emu: EmbeddedEmulator, extra: str = "") -> int:
    job = s.job(emu.url, extra="[limits]\nconcurrency = 6\nmax_attempts = 5\n" + extra)
    job.write_text(
        job.read_text().replace('api_key_env = "TEST_API_KEY"', 'api_key_env = "TEST_API_KEY"\ntimeout_s = 1')
    )
    return main(["run", str(job), "--no-progress"])


def results(tmp_path: Path) -> list[dict[str, Any]]:
    return pq.read_table(tmp_path / "out/results.parquet").to_pylist()


def chat_log(emu: EmbeddedEmulator) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r.get("route") == "azure"]


def assert_no_secret(tmp_path: Path, emu: EmbeddedEmulator, text: str) -> None:
    blobs = [text, str(emu.requests()), str(emu.stats())]
    blobs += [f.read_bytes().decode("latin-1") for f in tmp_path.rglob("*") if f.is_file() and "img" not in f.parts]
    assert not [b for b in blobs if API_KEY in b or API_KEY[8:20] in b]


@pytest.mark.parametrize(
    "fault",
    [
        Fault("429", rate=0.5, retry_after_s=0.2),
        Fault("429-retry-after", rate=0.3, retry_after_s=1.0),
        Fault("429-bare", rate=0.3),
        Fault("500", rate=0.3),
        Fault("502", rate=0.3),
        Fault("503", rate=0.3),
        Fault("504", rate=0.3),
        Fault("reset", rate=0.3),
        Fault("hang", rate=0.2, hang_s=30),
        Fault("slow-body", rate=0.3, trickle_s=0.3),
        Fault("malformed-json", rate=0.3),
    ],
    ids=lambda f: f.kind,
)
def test_transient_faults_are_retried_until_every_row_is_ok(
    tmp_path: Path,
    emulator: EmbeddedEmulator,
    env: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    fault: Fault,
) -> None:
    s = Sample(tmp_path, ROWS)
    emulator.set_faults([fault])
    assert run(s, emulator) == 0
    out = results(tmp_path)
    assert [r["status"] for r in out] == ["ok"] * ROWS
    assert all(f"sha256:{s.digests[i][:16]}" in r["answer"] for i, r in enumerate(out))
    log = chat_log(emulator)
    hit = [r for r in log if r.get("fault")]
    assert hit, "the fault never fired"
    if fault.kind != "slow-body":  # a slow body is still a good answer
        assert sum(r["attempts"] for r in out) == len(log) > ROWS
    assert_no_secret(tmp_path, emulator, str(capfd.readouterr()))


def test_a_429_storm_shares_one_cooldown(tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]) -> None:
    """Every request is refused for 1.5 s: the client waits as told instead of hammering."""
    s = Sample(tmp_path, ROWS)
    emulator.set_faults([Fault("429", rate=1.0, end_s=1.5, retry_after_s=1.0)])
    assert run(s, emulator) == 0
    throttled = [r for r in chat_log(emulator) if r.get("fault")]
    # Without a shared cool-down, 6 workers would send ~6 requests per retry round for 1.5 s.
    assert len(throttled) <= 12
    assert all(r["status"] == "ok" for r in results(tmp_path))


def test_content_filter_on_the_prompt_is_a_filtered_row_never_retried(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    s = Sample(tmp_path, ROWS)
    emulator.set_faults([Fault("content-filter-prompt", match=s.digests[3][:12])])
    assert run(s, emulator) == 0
    out = results(tmp_path)
    assert out[3]["status"] == "filtered" and out[3]["error_code"] == "content_filter"
    assert out[3]["attempts"] == 1 and "content management policy" in out[3]["error_message"]
    assert [r["status"] for i, r in enumerate(out) if i != 3] == ["ok"] * (ROWS - 1)


def test_content_filter_on_the_completion_is_a_filtered_row(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    s = Sample(tmp_path, ROWS)
    emulator.set_faults([Fault("content-filter-completion", match=s.digests[5][:12])])
    assert run(s, emulator) == 0
    out = results(tmp_path)
    assert (out[5]["status"], out[5]["finish_reason"], out[5]["attempts"]) == ("filtered", "content_filter", 1)
    assert out[5]["completion_tokens"] is not None  # billed all the same


def test_413_is_an_error_row_not_retried(tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]) -> None:
    s = Sample(tmp_path, ROWS)
    emulator.set_faults([Fault("413", match=s.digests[0][:12])])
    assert run(s, emulator) == 0
    out = results(tmp_path)
    assert (out[0]["status"], out[0]["error_code"], out[0]["attempts"]) == ("error", "request_too_large", 1)


def test_a_row_that_always_fails_uses_its_attempt_budget(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    s = Sample(tmp_path, ROWS)
    emulator.set_faults([Fault("500", match=s.digests[7][:12])])
    assert run(s, emulator) == 0
    out = results(tmp_path)
    assert (out[7]["status"], out[7]["attempts"]) == ("error", 5)
    assert out[7]["error_code"] == "InternalServerError" and out[7]["error_message"].startswith("gave up after 5")
    assert sum(1 for r in out if r["status"] == "ok") == ROWS - 1


@pytest.mark.parametrize(
    ("kind", "advice"),
    [
        ("401", "check that the key in $TEST_API_KEY belongs to the resource"),
        ("404", "check [endpoint].deployment ('gpt-4o')"),
        ("429-quota", "quota is used up"),
    ],
)
def test_fatal_errors_stop_the_run_resumably(
    tmp_path: Path,
    emulator: EmbeddedEmulator,
    env: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    kind: str,
    advice: str,
) -> None:
    s = Sample(tmp_path, ROWS)
    emulator.set_faults([Fault(kind)])
    assert run(s, emulator) == 1
    err = capfd.readouterr().err
    assert advice in err and "run the same command again to resume" in err
    # Stopped after the first few, not one error per row: nothing is recorded as failed.
    assert len(chat_log(emulator)) <= 2 * 6
    assert not (tmp_path / "out/results.parquet").exists()
    emulator.clear_faults()
    assert run(s, emulator) == 0
    assert [r["status"] for r in results(tmp_path)] == ["ok"] * ROWS
    assert_no_secret(tmp_path, emulator, err)
