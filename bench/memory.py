"""Issue-7 benchmark: does the client's memory stay flat as the manifest grows?

    .venv/bin/python bench/memory.py [--small 100000] [--large 1000000] [--skip-estimate] [--skip-run]
                                     [--concurrency 32] [--trace ROWS]

For each size, a manifest whose rows cycle over 12 tiny image files (PNG, JPEG, WebP; 16x16 to
48x32, under 1 KB) is estimated (``batch estimate``'s library call, no network) and really run
(``batch.run.runner.Runner``: every row sent, answered, journalled, written as parts, then the result
file assembled) against an emulator in its own process with zero latency and a TPM no run can
reach. Each is a fresh subprocess; its peak RSS is VmHWM from ``/proc/self/status`` (``ru_maxrss``
survives exec, so a child would inherit this larger process's peak). Printed: peak RSS per size
(for a run also the peak before sending and before assembling the result file), the ratio
large / small (target <= 1.1), wall time and rows/s of each run (the whole run is measured,
nothing is sampled or extrapolated), and the emulator's CPU.

``--trace ROWS`` instead runs one traced run of ROWS rows with ``tracemalloc`` and prints the
allocation sites holding the most memory at the run's traced peak (slow: for finding a leak).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_KEY, ROOT, emulator_with_pid, job_file, process_cpu_s, stats  # noqa: E402

UNLIMITED_TPM = 1_000_000_000
_HWM = r"""
def _hwm_mb():
    import re
    from pathlib import Path
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024
"""

_ESTIMATE = (
    _HWM
    + r"""
import json, sys, time
from batch.estimate.job import estimate_job
from batch.core.spec import load_spec
spec = load_spec(sys.argv[1])
t0, c0 = time.monotonic(), time.process_time()
report = estimate_job(spec)
print(json.dumps({"rows": report.rows_read, "wall": time.monotonic() - t0, "cpu": time.process_time() - c0,
                  "hwm_mb": _hwm_mb()}))
"""
)

_RUN = (
    _HWM
    + r"""
import asyncio, json, sys, time
from batch.run.runner import Runner
from batch.core.spec import load_spec
trace = len(sys.argv) > 2
if trace:
    import threading, tracemalloc
    tracemalloc.start(8)
    best = {"peak": 0, "snap": None}
    stop = threading.Event()
    def watch():
        while not stop.wait(2.0):
            cur, _ = tracemalloc.get_traced_memory()
            if cur > best["peak"]:
                best["peak"], best["snap"] = cur, tracemalloc.take_snapshot()
    threading.Thread(target=watch, daemon=True).start()
runner = Runner(load_spec(sys.argv[1]), show_progress=False)
before_run = _hwm_mb()
assemble = runner.store.assemble
phases = {}
def assemble_measured(manifest):
    phases["hwm_before_assemble_mb"] = _hwm_mb()
    return assemble(manifest)
runner.store.assemble = assemble_measured
t0, c0 = time.monotonic(), time.process_time()
summary = asyncio.run(runner.run())
out = {"rows": summary.tally.ok + summary.tally.error, "ok": summary.tally.ok, "wall": time.monotonic() - t0,
       "cpu": time.process_time() - c0, "hwm_mb": _hwm_mb(), "hwm_before_run_mb": before_run, **phases}
if trace:
    stop.set()
    snap = best["snap"]
    if snap is not None:
        stats = snap.statistics("traceback")
        out["traced_peak_mb"] = best["peak"] / 2**20
        out["top"] = [[s.size / 2**20, s.count, "\n".join(s.traceback.format()[-6:])] for s in stats[:12]]
print(json.dumps(out))
"""
)


def tiny_images(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, (size, fmt, ext) in enumerate(
        [((16, 16), "PNG", "png"), ((32, 24), "JPEG", "jpg"), ((48, 32), "WEBP", "webp")] * 4
    ):
        im = Image.new("RGB", size, ((i * 53) % 256, (i * 97) % 256, (i * 31) % 256))
        im.putpixel((i % size[0], 0), (255, 255, 255))
        buf = io.BytesIO()
        im.save(buf, fmt)
        name = f"t{i:02d}.{ext}"
        (folder / name).write_bytes(buf.getvalue())
        names.append(name)
    return names


def write_manifest(path: Path, names: list[str], rows: int) -> Path:
    """``rows`` rows in row groups of 100,000 (written in slices: the bench stays small too)."""
    schema = pa.schema([("id", pa.string()), ("image", pa.string()), ("detail", pa.string())])
    with pq.ParquetWriter(path, schema) as w:
        for start in range(0, rows, 100_000):
            idx = range(start, min(rows, start + 100_000))
            w.write_table(
                pa.table(
                    {
                        "id": [f"r{i:08d}" for i in idx],
                        "image": [f"img/{names[i % len(names)]}" for i in idx],
                        "detail": [("low", "high", "auto")[i % 3] for i in idx],
                    },
                    schema=schema,
                )
            )
    return path


def child(script: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "BENCH_API_KEY": BENCH_KEY}
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def make_job(folder: Path, manifest: Path, url: str, concurrency: int) -> Path:
    return job_file(
        folder / "job.toml", manifest, url, folder / "out.parquet", deployment="gpt-4o", model="gpt-4o",
        max_tokens=60, limits=f"tpm = {UNLIMITED_TPM}\nconcurrency = {concurrency}",
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--large", type=int, default=1_000_000)
    ap.add_argument("--skip-estimate", action="store_true")
    ap.add_argument("--skip-run", action="store_true")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--trace", type=int, default=0, help="one tracemalloc run of this many rows, then stop")
    args = ap.parse_args()
    sizes = [args.small, args.large]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        names = tiny_images(d / "img")
        if args.trace:
            sizes = [args.trace]
        manifests = {n: write_manifest(d / f"m{n}.parquet", names, n) for n in sizes}
        est: dict[int, dict[str, Any]] = {}
        run: dict[int, dict[str, Any]] = {}
        with emulator_with_pid(
            "--deployment", f"gpt-4o=gpt-4o:{UNLIMITED_TPM}", "--latency", "zero", "--seed", "1"
        ) as (url, pid):
            if args.trace:
                work = d / "trace"
                work.mkdir()
                r = child(_RUN, str(make_job(work, manifests[args.trace], url, args.concurrency)), "trace")
                print(f"traced run of {args.trace:,} rows: {r['wall']:.0f} s, peak RSS {r['hwm_mb']:.0f} MB, "
                      f"traced peak {r.get('traced_peak_mb', 0):.1f} MB")  # fmt: skip
                for size, count, where in r.get("top", []):
                    print(f"\n{size:8.2f} MB in {count:,} blocks\n{where}")
                return
            for n in sizes:
                work = d / f"w{n}"
                work.mkdir()
                job = make_job(work, manifests[n], url, args.concurrency)
                if not args.skip_estimate:
                    est[n] = child(_ESTIMATE, str(job))
                    e = est[n]
                    print(
                        f"[estimate {n:>9,} rows] {e['wall']:.1f} s ({n / float(e['wall']):,.0f} rows/s), "
                        f"peak RSS {e['hwm_mb']:.0f} MB",
                        flush=True,
                    )
                if not args.skip_run:
                    before = process_cpu_s(pid)
                    received0 = stats(url)["deployments"]["gpt-4o"]["received"]
                    r = child(_RUN, str(job))
                    emu = process_cpu_s(pid) - before
                    received = stats(url)["deployments"]["gpt-4o"]["received"] - received0
                    r["emulator_cpu"] = emu
                    r["received"] = received
                    run[n] = r
                    print(
                        f"[run {n:>9,} rows] {r['ok']:,} ok of {r['rows']:,}, {received:,} requests; "
                        f"{r['wall']:.0f} s ({n / float(r['wall']):,.0f} rows/s; client CPU {r['cpu']:.0f} s, "
                        f"emulator CPU {emu:.0f} s); peak RSS {r['hwm_mb']:.0f} MB "
                        f"(peak before sending {r['hwm_before_run_mb']:.0f} MB, before assembling the result file "
                        f"{r.get('hwm_before_assemble_mb', 0):.0f} MB)",
                        flush=True,
                    )
                # The parts of a finished run are the job's ledger; drop them before the next size.
                subprocess.run(["rm", "-rf", str(work)], check=True)
        small, large = sizes
        print()
        for label, figs in (("batch estimate", est), ("batch run", run)):
            if small in figs and large in figs:
                a, b = float(figs[small]["hwm_mb"]), float(figs[large]["hwm_mb"])
                print(
                    f"{label:15s} peak RSS {small:,} rows {a:.0f} MB, {large:,} rows {b:.0f} MB: "
                    f"ratio {b / a:.3f} (target <= 1.1)"
                )


if __name__ == "__main__":
    main()
