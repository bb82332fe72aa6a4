"""Shared benchmark plumbing: an emulator in its own process, manifests made from the sample images."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BENCH_KEY = "bench-key-not-a-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def emulator_process(*args: str) -> Iterator[str]:
    """Run `batch emulator` in a separate process (so its CPU is not the client's); yield its URL."""
    with emulator_with_pid(*args) as (url, _pid):
        yield url


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def emulator_with_pid(*args: str) -> Iterator[tuple[str, int]]:
    """:func:`emulator_process`, also yielding the emulator's pid (for :func:`process_cpu_s`)."""
    port = free_port()
    env = {**os.environ, "EMULATOR_API_KEYS": BENCH_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch", "emulator", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "emulator died") from None
                time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a busy machine, a long log to drop: do not lose the figures
            proc.kill()
            proc.wait(timeout=10)


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_emulator/stats", timeout=5) as r:
        data: dict[str, Any] = json.loads(r.read())
    return data


def sample_manifest(path: Path, rows: int, details: list[str] | None = None) -> Path:
    """`rows` rows cycling over the bundled sample images (absolute paths) and detail levels."""
    images = sorted((ROOT / "data" / "images").iterdir())
    det = details or ["low", "high", "auto"]
    table = pa.table(
        {
            "id": [f"r{i:07d}" for i in range(rows)],
            "image": [str(images[i % len(images)]) for i in range(rows)],
            "detail": [det[i % len(det)] for i in range(rows)],
        }
    )
    pq.write_table(table, path)
    return path


def job_file(
    path: Path, manifest: Path, url: str, out: Path, *, deployment: str, model: str, max_tokens: int, limits: str
) -> Path:
    path.write_text(f"""
[input]
manifest = "{manifest}"
allow_outside_paths = true
[prompt]
user = "Describe the image."
max_tokens = {max_tokens}
[endpoint]
kind = "azure"
url = "{url}"
deployment = "{deployment}"
model = "{model}"
api_key_env = "BENCH_API_KEY"
[limits]
{limits}
[output]
path = "{out}"
""")
    return path


def distinct_images(folder: Path, n: int) -> Path:
    """n small images with distinct bytes, so the emulator's log maps each request to its row."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    for i in range(n):
        img = Image.new("RGB", (48 + i % 32, 40), (rng.randrange(256), rng.randrange(256), i % 256))
        img.putpixel((0, 0), (i // 65536, (i // 256) % 256, i % 256))
        img.save(folder / f"{i:06d}.png")
    table = pa.table({"id": [f"r{i:06d}" for i in range(n)], "image": [f"img/{i:06d}.png" for i in range(n)]})
    pq.write_table(table, folder.parent / "manifest.parquet")
    return folder.parent / "manifest.parquet"
