"""The CLI as a user runs it: a real subprocess, images over http, SIGINT, then resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from batch.cli import main
from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel
from tests.support import API_KEY, Sample

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def image_server(tmp_path: Path) -> AsyncIterator[tuple[str, Sample]]:
    """Images served over loopback http, as an archive on a web server would be."""
    s = Sample(tmp_path, 6)
    app = web.Application()
    app.router.add_static("/img", tmp_path / "img")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}/img", s
    finally:
        await server.close()


async def test_http_image_urls_pass_through(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], image_server: tuple[str, Sample]
) -> None:
    base, s = image_server
    urls = [f"{base}/{Path(p).name}" for p in s.images]
    pq.write_table(pa.table({"id": [f"u{i}" for i in range(6)], "image": urls}), s.manifest)
    import asyncio

    code = await asyncio.to_thread(main, ["run", str(s.job(emulator.url)), "--no-progress"])
    assert code == 0
    out = pq.read_table(tmp_path / "out/results.parquet").to_pylist()
    for i, r in enumerate(out):
        assert r["status"] == "ok" and f"sha256:{s.digests[i][:16]}" in r["answer"]
    sources = {img["source"] for r in emulator.requests() for img in r.get("images", [])}
    assert sources == {"url"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_rerun_resumes(tmp_path: Path, env: dict[str, str], sig: signal.Signals) -> None:
    config = EmulatorConfig(
        deployments=[Deployment("gpt-4o", "gpt-4o", tpm=10_000_000)],
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel(0.3, 0.0, 0.2),
    )
    s = Sample(tmp_path, 120)
    with EmbeddedEmulator(config) as emu:
        job = s.job(emu.url, extra="[limits]\nconcurrency = 8\n")
        cmd = [sys.executable, "-m", "batch", "run", str(job), "--no-progress"]
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        parts = tmp_path / "out/results.parquet.parts"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(parts.glob("b*.parquet"))) < 2:
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1, err
        assert "run the same command again to resume" in err and f"received {sig.name}" in err
        assert API_KEY not in out + err
        done = sum(pq.read_metadata(p).num_rows for p in parts.glob("b*.parquet"))
        sent_first = len([r for r in emu.requests() if r.get("route") == "azure"])
        assert 0 < done < 120
        # In-flight rows at the signal may have been answered but not recorded: at most the window.
        assert sent_first - done <= 8
        emu.reset()
        assert main(["run", str(job), "--no-progress"]) == 0
        resent = len([r for r in emu.requests() if r.get("route") == "azure"])
    assert resent == 120 - done
    rows = pq.read_table(tmp_path / "out/results.parquet").to_pylist()
    assert [r["id"] for r in rows] == [f"row-{i}" for i in range(120)]
    assert all(f"sha256:{s.digests[i][:16]}" in r["answer"] for i, r in enumerate(rows))
