"""SIGKILL a real `batch run --route batch` at each stage of a shard's trip, then resume: every
row exactly once, no line run twice by the service, and batches created = shards recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel
from batch.emulator.batches import BATCHES_KEY
from tests.support import API_KEY, Sample

ROOT = Path(__file__).resolve().parents[1]
ROWS = 24


def events(folder: Path) -> list[dict[str, object]]:
    log = folder / "shards.jsonl"
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


STAGES: dict[str, Callable[[list[dict[str, object]]], bool]] = {
    "written": lambda ev: any("lines" in e for e in ev),
    "uploaded": lambda ev: any("file_id" in e for e in ev),
    "created": lambda ev: any("batch_id" in e for e in ev),
    "polling": lambda ev: any(e.get("status") == "in_progress" for e in ev),
    "merging": lambda ev: any(e.get("status") == "completed" for e in ev),
    "cleaning": lambda ev: any(e.get("merged") for e in ev),
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_sigkill_at_each_stage_then_resume(tmp_path: Path, env: dict[str, str], stage: str) -> None:
    s = Sample(tmp_path, ROWS)
    sha_to_row = {d: i for i, d in enumerate(s.digests)}
    out = tmp_path / "out/results.parquet"
    folder = tmp_path / "out/results.parquet.parts/batch"
    config = EmulatorConfig(
        deployments=[Deployment("bulk", "gpt-4o", tpm=10**9, global_batch=True)],
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel.zero(),
        batch_seconds=2.0,
    )
    with EmbeddedEmulator(config) as emu:
        job = s.job(emu.url, deployment="bulk", extra="[run]\nshard_lines = 8\n")
        cmd = [
            sys.executable,
            "-m",
            "batch",
            "run",
            str(job),
            "--no-progress",
            "--route",
            "batch",
            "--poll-seconds",
            "0",
        ]
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not STAGES[stage](events(folder)):
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill at {stage}"
        final = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        assert emu._runner is not None
        book = emu._runner.app[BATCHES_KEY]
        lines_run = Counter(
            sha_to_row[r["images"][0]["sha256"]]
            for r in emu.requests()
            if r.get("route") == "azure-v1" and r.get("images")
        )
        recorded_shards = {int(str(e["shard"])) for e in events(folder) if "batch_id" in e}
    assert len(book.jobs) == len(recorded_shards) == 3  # batches created = shards
    assert lines_run == Counter(range(ROWS))  # no line run twice by the service
    rows = pq.read_table(out).to_pylist()
    assert [r["id"] for r in rows] == [f"row-{i}" for i in range(ROWS)]
    assert all(r["status"] == "ok" and f"sha256:{s.digests[i][:16]}" in r["answer"] for i, r in enumerate(rows))
    parts = [p for p in (tmp_path / "out/results.parquet.parts").glob("b*.parquet")]
    merged = Counter(i for p in parts for i in pq.read_table(p, columns=["_row"]).column("_row").to_pylist())
    assert merged == Counter(range(ROWS))  # no row merged twice
    assert not {j.input_file_id for j in book.jobs.values()} & set(book.files.files)  # inputs deleted
