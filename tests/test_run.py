"""End to end: real jobs through the real emulator over loopback HTTP, real Parquet out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.core.spec import load_spec
from batch.emulator import EmbeddedEmulator
from batch.run.runner import Runner
from tests.support import API_KEY, Sample


def rows(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def chat_requests(emu: EmbeddedEmulator) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r.get("route") in ("azure", "azure-v1", "openai")]


@pytest.mark.parametrize(("kind", "suffix"), [("azure", ""), ("azure-v1", ""), ("openai", "/v1")])
def test_all_three_url_styles_end_to_end(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], kind: str, suffix: str
) -> None:
    s = Sample(tmp_path, 9)
    assert main(["run", str(s.job(emulator.url + suffix, kind=kind)), "--no-progress"]) == 0
    out = rows(tmp_path / "out/results.parquet")
    assert [r["id"] for r in out] == [f"row-{i}" for i in range(9)]
    for i, r in enumerate(out):
        assert r["status"] == "ok", r
        # The emulator quotes a digest of the bytes it received: row i got image i.
        assert f"sha256:{s.digests[i][:16]}" in r["answer"]
        assert r["finish_reason"] in ("stop", "length")
        assert r["prompt_tokens"] > 0 and r["completion_tokens"] > 0
        assert r["total_tokens"] == r["prompt_tokens"] + r["completion_tokens"]
        assert r["attempts"] == 1 and r["request_id"] and r["model"]
    log = chat_requests(emulator)
    assert len(log) == 9 and {r["route"] for r in log} == {kind}
    assert {r["auth"] for r in log} == {"bearer" if kind == "openai" else "api-key"}


def test_per_row_detail_reaches_the_request(tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]) -> None:
    details: list[str | None] = ["low", "high", "auto", None, "low", "high"]
    s = Sample(tmp_path, 6, details=details)
    job = s.job(emulator.url, extra="")
    job.write_text(job.read_text().replace('user = "Describe the image."', 'user = "Describe."\ndetail = "high"'))
    assert main(["run", str(job), "--no-progress"]) == 0
    sent = {r["images"][0]["sha256"][:16]: r["images"][0]["detail"] for r in chat_requests(emulator)}
    expected = [d or "high" for d in details]  # null falls back to the job's default
    assert [sent[s.digests[i][:16]] for i in range(6)] == expected
    out = rows(tmp_path / "out/results.parquet")
    assert [r["detail_used"] for r in out] == expected
    assert [r["detail"] for r in out] == details  # manifest columns pass through untouched


def test_bad_rows_become_error_rows_and_the_rest_finish(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    s = Sample(tmp_path, 8, details=["low", "medium", "low", "low", "low", "low", "low", "low"])
    (tmp_path / s.images[4]).unlink()
    (tmp_path / s.images[6]).write_bytes(b"")
    assert main(["run", str(s.job(emulator.url)), "--no-progress"]) == 0
    out = rows(tmp_path / "out/results.parquet")
    assert [r["status"] for r in out] == ["ok", "error", "ok", "ok", "error", "ok", "error", "ok"]
    assert out[1]["error_code"] == "bad_detail" and "'medium'" in out[1]["error_message"]
    assert out[4]["error_code"] == "image_not_found" and s.images[4] in out[4]["error_message"]
    assert out[6]["error_code"] == "image_empty"
    assert len(chat_requests(emulator)) == 5  # bad rows were never sent


def test_o_series_gets_max_completion_tokens(tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]) -> None:
    s = Sample(tmp_path, 3)
    assert main(["run", str(s.job(emulator.url, deployment="o4", model="o4-mini")), "--no-progress"]) == 0
    assert {r["max_tokens_field"] for r in chat_requests(emulator)} == {"max_completion_tokens"}
    assert all(r["status"] == "ok" for r in rows(tmp_path / "out/results.parquet"))


def test_short_max_tokens_is_length(tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]) -> None:
    s = Sample(tmp_path, 3)
    assert main(["run", str(s.job(emulator.url, max_tokens=5)), "--no-progress"]) == 0
    out = rows(tmp_path / "out/results.parquet")
    assert {r["finish_reason"] for r in out} == {"length"}
    assert {r["completion_tokens"] for r in out} == {5}


def test_rerun_of_a_finished_job_sends_nothing(tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]) -> None:
    s = Sample(tmp_path, 5)
    job = s.job(emulator.url)
    assert main(["run", str(job), "--no-progress"]) == 0
    first = rows(tmp_path / "out/results.parquet")
    assert main(["run", str(job), "--no-progress"]) == 0
    assert len(chat_requests(emulator)) == 5
    assert rows(tmp_path / "out/results.parquet") == first


def test_resume_sends_only_missing_rows(tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]) -> None:
    """A run that lost some rows (as a crash would) resends exactly those, and the output is whole."""
    s = Sample(tmp_path, 30)
    job = s.job(emulator.url)
    assert main(["run", str(job), "--no-progress"]) == 0
    parts = sorted((tmp_path / "out/results.parquet.parts").glob("b*.parquet"))
    lost = sum(pq.read_metadata(p).num_rows for p in parts[1:3])
    for p in parts[1:3]:
        p.unlink()
    (tmp_path / "out/results.parquet").unlink()
    emulator.reset()
    assert main(["run", str(job), "--no-progress"]) == 0
    assert len(chat_requests(emulator)) == lost > 0
    out = rows(tmp_path / "out/results.parquet")
    assert [r["id"] for r in out] == [f"row-{i}" for i in range(30)]
    assert all(f"sha256:{s.digests[i][:16]}" in r["answer"] for i, r in enumerate(out))


def test_limiter_learns_a_different_charging_rule(tmp_path: Path, env: dict[str, str]) -> None:
    """The emulator charges max tokens only; the limiter's scale converges below 1 from the headers."""
    from batch.emulator import Deployment, EmulatorConfig, LatencyModel

    cfg = EmulatorConfig(
        deployments=[Deployment("gpt-4o", "gpt-4o", tpm=20_000)],
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel.zero(),
        charge_rule="max-only",
    )
    s = Sample(tmp_path, 20)
    with EmbeddedEmulator(cfg) as emu:
        job = s.job(emu.url, max_tokens=300, extra="[limits]\ntpm = 20000\nconcurrency = 1\n")
        runner = Runner(load_spec(job), show_progress=False)
        import asyncio

        summary = asyncio.run(runner.run())
    assert summary.tally.ok == 20
    # Our estimate is prompt + max (~300 + images + text); the server charged exactly 300 a request.
    est = 300 + runner.tally.prompt_tokens / 20
    assert runner.limiter.scale == pytest.approx(300 / est, rel=0.25)
    assert runner.limiter.scale < 0.95


def test_secret_key_never_leaks(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 6)
    (tmp_path / s.images[2]).unlink()
    assert main(["run", str(s.job(emulator.url)), "--no-progress"]) == 0
    # A wrong deployment (fatal) and a wrong endpoint (transport errors) also keep it out of messages.
    assert main(["run", str(s.job(emulator.url, deployment="nope", out="o2/r.parquet"))]) == 1
    bad = s.job("http://127.0.0.1:9", out="o3/r.parquet", extra="[limits]\nmax_attempts = 2\n")
    assert main(["run", str(bad)]) == 1
    captured = capfd.readouterr()
    assert "does not exist" in captured.err and "check [endpoint].deployment ('nope')" in captured.err
    assert "cannot connect to azure deployment 'gpt-4o' at http://127.0.0.1:9" in captured.err
    blobs = [captured.out, captured.err, str(emulator.requests()), str(emulator.stats())]
    for f in tmp_path.rglob("*"):
        if f.is_file() and f.suffix != ".png":
            blobs.append(f.read_bytes().decode("latin-1"))
    assert not [b for b in blobs if API_KEY in b or API_KEY[-12:] in b]


def test_bad_job_exits_2_and_sends_nothing(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 3)
    job = s.job(emulator.url, extra="[limits]\ntpm = -1\n")
    assert main(["run", str(job)]) == 2
    assert "[limits].tpm" in capfd.readouterr().err
    assert main(["run", str(s.job(emulator.url)), "--manifest", str(tmp_path / "none.parquet")]) == 2
    assert main(["run", str(s.job(emulator.url, model="gpt-9-turbo"))]) == 2
    assert chat_requests(emulator) == []


def test_summary_shows_cost_from_billed_usage(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 6)
    assert main(["run", str(s.job(emulator.url)), "--no-progress"]) == 0
    out = rows(tmp_path / "out/results.parquet")
    assert {r["model"] for r in out} <= {"gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20"}
    # gpt-4o (2024-08-06 and later): $2.50 in, $10.00 out per 1M tokens; Batch half of that.
    expected = sum(r["prompt_tokens"] * 2.5e-6 + r["completion_tokens"] * 10e-6 for r in out)
    printed = capsys.readouterr().err  # the summary shares stderr with the bar, finished or stopped
    assert f"cost now: ${expected:.4f} at standard prices (${expected / 2:.4f} at Batch prices)" in printed
