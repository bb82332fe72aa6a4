"""Crash, then resume at once into the window the killed run filled (issue 14): the rerun must take
the killed run's traffic for someone else's, wait for it to age out, then go at full speed.

Before, the rerun read the full window as "the server charges us 20x" and admitted about 60 rows a
minute for five minutes. Figures come from the emulator's own books (its per-second timeline).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel
from tests.support import API_KEY, Sample

ROOT = Path(__file__).resolve().parents[1]
ROWS, TPM = 130, 12_000


def test_sigkill_then_resume_at_once_reaches_full_speed_when_the_old_traffic_ages_out(
    tmp_path: Path, env: dict[str, str]
) -> None:
    s = Sample(tmp_path, ROWS, details=["low"] * ROWS)
    config = EmulatorConfig(
        deployments=[Deployment("gpt-4o", "gpt-4o", tpm=TPM, rpm=1200)],  # tokens bind, not requests
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel(0.1, 0.0, 0.3),
        seed=7,
    )
    with EmbeddedEmulator(config) as emu:
        job = s.job(emu.url, max_tokens=50)
        cmd = [sys.executable, "-m", "batch", "run", str(job), "--no-progress", "--tpm", str(TPM), "--rpm", "1200"]
        first = subprocess.Popen(
            cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and emu.stats()["deployments"]["gpt-4o"]["admitted"] < 50:
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed = emu.stats()["deployments"]["gpt-4o"]
        rerun = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        st = emu.stats()["deployments"]["gpt-4o"]
    timeline = st["timeline"]  # [second, admitted, tokens, throttled] from the first admission
    first_tokens = killed["tokens_charged"]
    assert first_tokens >= 0.6 * TPM, "the killed run should have filled most of the window"
    old_gone = max(t for t, admitted, _tok, _thr in killed["timeline"] if admitted) + 61  # the killed run's last
    rest = sum(tok for t, _a, tok, _thr in timeline if t >= old_gone)
    soon = sum(tok for t, _a, tok, _thr in timeline if old_gone <= t < old_gone + 30)
    # Full speed within one window of the old traffic ageing out: here what was left fits in it.
    assert rest <= 0.95 * TPM
    busy = [row for row in timeline if row[1] or row[3]]
    assert soon >= 0.9 * rest, f"only {soon} of {rest} tokens went in the 30 s after the window freed: {busy}"
    assert st["throttled_tokens"] + st["throttled_requests"] <= 5
    rows = pq.read_table(tmp_path / "out/results.parquet").to_pylist()
    assert len(rows) == ROWS and all(r["status"] == "ok" for r in rows)
