"""Crash, then resume at once into the windows the killed run filled (issue 14): the rerun must take
the killed run's traffic for someone else's, not collide with it, and go at full speed as it ages out.

Before, the rerun's opening burst went into a full request window (over a hundred 429s on the
issue's setup), and its limiter read the full token window as "the server charges us 20x". Figures
come from the emulator's own books (its per-second timeline and request log).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel
from tests.support import API_KEY, Sample

ROOT = Path(__file__).resolve().parents[1]


def kill_then_resume(
    tmp_path: Path, rows: int, tpm: int, rpm: int, kill_after: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run, SIGKILL once ``kill_after`` requests are admitted, rerun at once to the end; the
    emulator's stats at the kill and at the end."""
    s = Sample(tmp_path, rows, details=["low"] * rows)
    config = EmulatorConfig(
        deployments=[Deployment("gpt-4o", "gpt-4o", tpm=tpm, rpm=rpm)],
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel(0.3, 0.0, 0.3),
        seed=7,
    )
    with EmbeddedEmulator(config) as emu:
        job = s.job(emu.url, max_tokens=50)
        cmd = [sys.executable, "-m", "batch", "run", str(job), "--no-progress", "--tpm", str(tpm), "--rpm", str(rpm)]
        env = dict(os.environ)
        first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and emu.stats()["deployments"]["gpt-4o"]["admitted"] < kill_after:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed = emu.stats()["deployments"]["gpt-4o"]
        rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        end = emu.stats()["deployments"]["gpt-4o"]
    out = pq.read_table(tmp_path / "out/results.parquet").to_pylist()
    assert len(out) == rows and all(r["status"] == "ok" for r in out)
    return killed, end


def test_resume_at_once_into_a_full_request_window(tmp_path: Path, env: dict[str, str]) -> None:
    """100 requests per 10 s; the killed run filled one window: the rerun waits it out instead of
    bursting into it, then admits a full window every 10 s."""
    killed, end = kill_then_resume(tmp_path, 300, 1_000_000, 600, kill_after=95)
    throttled = (
        end["throttled_requests"] + end["throttled_tokens"] - killed["throttled_requests"] - killed["throttled_tokens"]
    )
    assert throttled <= 15, f"the rerun took {throttled} 429s"
    timeline = end["timeline"]  # [second, admitted, tokens, throttled]
    gone = max(t for t, admitted, _tok, _thr in killed["timeline"] if admitted) + 10
    rest = end["admitted"] - killed["admitted"]
    last = max(t for t, admitted, _tok, _thr in timeline if admitted)
    # Full speed once the old requests left: a full window (100) every 10 s from then on.
    windows = -(-rest // 100)
    assert last - gone <= 10 * windows + 5, f"{rest} rows took until second {last}; the window freed at {gone}"


@pytest.mark.slow
def test_resume_at_once_into_a_full_token_window(tmp_path: Path, env: dict[str, str]) -> None:
    """12k TPM filled by the killed run: what is left goes within 30 s of its traffic ageing out."""
    tpm = 12_000
    killed, end = kill_then_resume(tmp_path, 130, tpm, 1200, kill_after=50)
    assert killed["tokens_charged"] >= 0.6 * tpm, "the killed run should have filled most of the window"
    timeline = end["timeline"]
    gone = max(t for t, admitted, _tok, _thr in killed["timeline"] if admitted) + 61
    rest = sum(tok for t, _a, tok, _thr in timeline if t >= gone)
    soon = sum(tok for t, _a, tok, _thr in timeline if gone <= t < gone + 30)
    assert rest <= 0.95 * tpm
    assert soon >= 0.9 * rest, f"only {soon} of {rest} tokens went in the 30 s after the window freed"
    assert end["throttled_tokens"] + end["throttled_requests"] <= 5
