"""Issue-4 benchmark: thousands of rows through mixed faults and three SIGKILLs, against the same run
with no faults, side by side.

    .venv/bin/python bench/reliability.py [--rows 3000] [--kills 3]

Faults injected by the emulator (its own process): 10 % 429 (with retry-after-ms), 2 % 5xx (500/502/
503/504), 1 % connection resets, 1 % hangs longer than the client's timeout. The client is a real
`batch run` subprocess, SIGKILLed at random moments and rerun until it finishes. Printed: rows lost,
rows duplicated (in the result file), requests re-sent after resumes (rows already sent by an
earlier, killed run), wall time relative to the fault-free run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_KEY, ROOT, distinct_images, emulator_process, job_file  # noqa: E402

FAULTS = ["429:0.10", "500:0.005", "502:0.005", "503:0.005", "504:0.005", "reset:0.01", "hang:0.01,hang_s=60"]


def requests_log(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(url + "/_emulator/requests", timeout=30) as r:
        data = json.loads(r.read())
    return data["requests"] if isinstance(data, dict) else data


def run_once(url: str, tmp: Path, manifest: Path, name: str, kills: int, rng: random.Random) -> dict[str, object]:
    out = tmp / f"{name}.parquet"
    job = job_file(
        tmp / f"{name}.toml",
        manifest,
        url,
        out,
        deployment="gpt-4o",
        model="gpt-4o",
        max_tokens=60,
        limits="concurrency = 64\nmax_attempts = 10",
    )
    job.write_text(
        job.read_text().replace('api_key_env = "BENCH_API_KEY"', 'api_key_env = "BENCH_API_KEY"\ntimeout_s = 5')
    )
    cmd = [sys.executable, "-m", "batch", "run", str(job), "--no-progress"]
    env = {**os.environ, "BENCH_API_KEY": BENCH_KEY}
    start = time.monotonic()
    kill_times: list[float] = []
    for _ in range(kills):
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kill_times.append(time.time())
    final = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if final.returncode != 0:
        raise SystemExit(f"{name}: final run failed:\n{final.stderr}")
    t = pq.read_table(out, columns=["id", "status", "attempts"])
    ids = Counter(t.column("id").to_pylist())
    statuses = Counter(t.column("status").to_pylist())
    return {
        "wall": wall,
        "rows": len(ids),
        "dups": sum(c - 1 for c in ids.values()),
        "ok": statuses.get("ok", 0),
        "error": statuses.get("error", 0),
        "kills": kill_times,
    }


def resent_after_resumes(log: list[dict[str, object]], kill_times: list[float]) -> list[int]:
    """Per resume: requests for rows that an earlier (killed) run had already sent."""
    seen: set[str] = set()
    counts: list[int] = []
    bounds = [*kill_times, float("inf")]
    segment = 0
    current: set[str] = set()
    resent = 0
    for r in sorted(log, key=lambda e: float(e["time"])):  # type: ignore[arg-type]
        while float(r["time"]) > bounds[segment]:  # type: ignore[arg-type]
            counts.append(resent)
            seen |= current
            current, resent, segment = set(), 0, segment + 1
        images = r.get("images") or []
        sha = str(images[0]["sha256"]) if images else ""  # type: ignore[index]
        if sha in seen and sha not in current:
            resent += 1
        current.add(sha)
    counts.append(resent)
    return counts[1:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="KIND",
        help="leave a fault kind out (e.g. --without 429) to see what it costs",
    )
    args = ap.parse_args()
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        manifest = distinct_images(tmp / "img", args.rows)
        latency = ["--latency", "0.3,0.002,0.3"]
        with emulator_process("--deployment", "gpt-4o=gpt-4o:100000000", *latency) as url:
            clean = run_once(url, tmp, manifest, "clean", 0, rng)
            clean_requests = len(requests_log(url))
        chosen = [f for f in FAULTS if f.split(":")[0] not in args.without]
        fault_args = [a for f in chosen for a in ("--fault", f)]
        with emulator_process("--deployment", "gpt-4o=gpt-4o:100000000", *latency, *fault_args) as url:
            faulty = run_once(url, tmp, manifest, "faulty", args.kills, rng)
            log = requests_log(url)
    # Requests per row across all runs; a row's requests beyond its own retries show re-sends.
    per_row = Counter(str(r.get("images", [{}])[0].get("sha256", "")) for r in log if r.get("images"))
    faults = Counter(str(r.get("fault")) for r in log if r.get("fault"))
    lost = args.rows - faulty["rows"]
    print(f"rows {args.rows}; faults injected: {dict(faults)}; SIGKILLs: {args.kills}")
    print(f"rows lost {lost}   rows duplicated {faulty['dups']}   final ok {faulty['ok']} error {faulty['error']}")
    print(
        f"requests: clean run {clean_requests}, faulty run {len(log)} "
        f"({len(log) - args.rows} beyond one per row: retries of faults + re-sends after kills)"
    )
    print(f"rows sent more than once: {sum(1 for c in per_row.values() if c > 1)}")
    print(
        f"rows re-sent after each resume (rows an earlier, killed run had sent): "
        f"{resent_after_resumes(log, faulty['kills'])}  (window: 64 in flight)"
    )
    cw, fw = float(clean["wall"]), float(faulty["wall"])  # type: ignore[arg-type]
    print(f"wall time: clean {cw:.1f} s, faulty {fw:.1f} s, slowdown x{fw / cw:.2f}")


if __name__ == "__main__":
    main()
