"""Issue 13, item 4: Ctrl-C must not drop requests already on the wire (they are billed).

A real subprocess against the emulator at its realistic latency (multi-second replies, longer
than the old 2 s grace): the first SIGINT waits for the requests on the wire and records them, so
the resume sends none of them again; a second SIGINT abandons them at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel
from tests.support import API_KEY, Sample

ROOT = Path(__file__).resolve().parents[1]
ROWS = 60


@pytest.fixture
def slow_emulator() -> Iterator[EmbeddedEmulator]:
    config = EmulatorConfig(
        deployments=[Deployment("gpt-4o", "gpt-4o", tpm=10_000_000)],
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel.realistic(),  # ~1.2 s + 17 ms per output token: ~3 s at 120 tokens
        seed=3,
    )
    with EmbeddedEmulator(config) as emu:
        yield emu


def sent(emu: EmbeddedEmulator) -> int:
    return len([r for r in emu.requests() if r.get("route") == "azure"])


def recorded(parts: Path) -> int:
    """Rows on disk: part files plus whole journal lines (a resume turns those into parts)."""
    rows = sum(pq.read_metadata(p).num_rows for p in parts.glob("b*.parquet"))
    return rows + sum(len(j.read_text().splitlines()) for j in parts.glob("journal-*.jsonl"))


def start_and_interrupt(tmp_path: Path, emu: EmbeddedEmulator, *, second_after: float | None) -> tuple[str, Path]:
    s = Sample(tmp_path, ROWS)
    job = s.job(emu.url, max_tokens=120, extra="[limits]\nconcurrency = 6\n")
    cmd = [sys.executable, "-m", "batch", "run", str(job), "--no-progress"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    parts = tmp_path / "out/results.parquet.parts"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(parts.glob("b*.parquet")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    if second_after is not None:
        time.sleep(second_after)
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and API_KEY not in err
    return err, job


def test_first_ctrl_c_waits_for_requests_on_the_wire_and_resume_resends_none(
    tmp_path: Path, slow_emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    err, job = start_and_interrupt(tmp_path, slow_emulator, second_after=None)
    assert "waiting up to 120 s for" in err and "on the wire" in err and "Ctrl-C again" in err
    parts = tmp_path / "out/results.parquet.parts"
    first = sent(slow_emulator)
    assert recorded(parts) == first < ROWS  # every request that went out landed and was kept
    slow_emulator.reset()
    assert main(["run", str(job), "--no-progress"]) == 0
    assert sent(slow_emulator) == ROWS - first  # none of the landed rows was sent (and billed) twice
    ids = pq.read_table(tmp_path / "out/results.parquet", columns=["id"]).column("id").to_pylist()
    assert ids == [f"row-{i}" for i in range(ROWS)]


def test_second_ctrl_c_abandons_the_requests_on_the_wire(
    tmp_path: Path, slow_emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    err, _ = start_and_interrupt(tmp_path, slow_emulator, second_after=0.3)
    assert "waiting up to" in err and "received SIGINT" in err
    # the replies still on their way (held ~3 s by the emulator) were not waited for
    assert recorded(tmp_path / "out/results.parquet.parts") < sent(slow_emulator)
