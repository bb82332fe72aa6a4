"""SIGKILL a real `batch run` at random points, resume each time: nothing lost, nothing duplicated,
and each resume re-sends only rows that were in flight (sent but not recorded) at the kill."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel
from batch.inputs.manifest import Manifest
from batch.ledger.store import ResultStore
from tests.support import API_KEY, Sample

ROOT = Path(__file__).resolve().parents[1]
ROWS, WINDOW = 240, 12


def recorded_rows(s: Sample, out: Path) -> set[int]:
    """Rows with an outcome on disk, as a resumed run will see them (journals folded into parts)."""
    store = ResultStore(out, Manifest(s.manifest).check())
    store.open()
    return {int(i) for i in store.done.nonzero()[0]}


def sent_rows(emu: EmbeddedEmulator, sha_to_row: dict[str, int], since: int) -> list[int]:
    return [
        sha_to_row[r["images"][0]["sha256"]]
        for r in emu.requests()
        if r.get("route") == "azure" and r["seq"] > since and r.get("images")
    ]


def test_sigkill_at_random_points_then_resume(tmp_path: Path, env: dict[str, str]) -> None:
    rng = random.Random(4242)
    s = Sample(tmp_path, ROWS)
    sha_to_row = {d: i for i, d in enumerate(s.digests)}
    assert len(sha_to_row) == ROWS
    out = tmp_path / "out/results.parquet"
    config = EmulatorConfig(
        deployments=[Deployment("gpt-4o", "gpt-4o", tpm=10_000_000)],
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel(0.15, 0.0, 0.5),
        seed=3,
    )
    with EmbeddedEmulator(config) as emu:
        job = s.job(emu.url, extra=f"[limits]\nconcurrency = {WINDOW}\n")
        job.write_text(job.read_text().replace("flush_rows = 7", "flush_rows = 3"))
        cmd = [sys.executable, "-m", "batch", "run", str(job), "--no-progress"]
        seen = 0
        ever_sent: set[int] = set()
        recorded: set[int] = set()
        for kill in range(3):
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            # Kill once some rows of this run are on the wire, at a random moment after that.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(sent_rows(emu, sha_to_row, seen)) < 5:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.05, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            assert proc.returncode == -signal.SIGKILL, f"run {kill} ended before the kill"
            sent = sent_rows(emu, sha_to_row, seen)
            seen = max(r["seq"] for r in emu.requests())
            resent = [r for r in sent if r in ever_sent]
            in_flight_before = ever_sent - recorded
            assert set(resent) <= in_flight_before, "a resume re-sent a row that was already recorded"
            assert len(resent) <= len(in_flight_before) <= WINDOW
            ever_sent |= set(sent)
            recorded = recorded_rows(s, out)
            assert recorded <= ever_sent
            # What the kill lost is only what was in flight: at most the window.
            assert len(ever_sent - recorded) <= WINDOW
        final = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        last = sent_rows(emu, sha_to_row, seen)
        assert set(last) & recorded == set()
        assert len([r for r in last if r in ever_sent]) <= WINDOW
        assert ever_sent | set(last) == set(range(ROWS))
    rows = pq.read_table(out).to_pylist()
    assert [r["id"] for r in rows] == [f"row-{i}" for i in range(ROWS)]
    assert all(r["status"] == "ok" and f"sha256:{s.digests[i][:16]}" in r["answer"] for i, r in enumerate(rows))
