"""Issue-15 benchmark: thousands of rows through the Batch API route on the emulator, once cleanly
and once SIGKILLed at each stage of a shard's trip, resumed every time.

    .venv/bin/python bench/batch_route.py [--rows 10000] [--shard-lines 2500] [--batch-seconds 4]

The emulator runs in its own process as a Global-Batch deployment, with 1 % of lines failing with
a 500 (so some lines are resubmitted). The client is a real `batch run --route batch` subprocess.
Printed per scenario: rows lost and duplicated (in the result file and in the part files), batch
jobs created on the service against shards recorded, lines resubmitted, the largest shard's bytes
against the 200 MB limit, wall time; then the cost report's Batch price against the standard price.
Target: 0 lost, 0 duplicated, batches created = shards, Batch price = 0.5 x standard.
"""

from __future__ import annotations

import argparse
import json
import os
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

from bench.common import BENCH_KEY, ROOT, distinct_images, emulator_process  # noqa: E402

MAX_FILE_BYTES = 200 * 1000 * 1000
STAGES = ("none", "written", "uploaded", "created", "polling", "merging", "cleaning")


def job(path: Path, manifest: Path, url: str, out: Path, shard_lines: int) -> Path:
    path.write_text(f"""
[input]
manifest = "{manifest}"
[prompt]
user = "Describe the image."
max_tokens = 60
[endpoint]
kind = "azure"
url = "{url}"
deployment = "bulk"
model = "gpt-4o"
api_key_env = "BENCH_API_KEY"
[run]
route = "batch"
shard_lines = {shard_lines}
max_resubmits = 5
[output]
path = "{out}"
flush_rows = 2000
""")
    return path


def events(folder: Path) -> list[dict[str, object]]:
    log = folder / "shards.jsonl"
    out = []
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def reached(stage: str, ev: list[dict[str, object]]) -> bool:
    return {
        "written": lambda: any("lines" in e for e in ev),
        "uploaded": lambda: any("file_id" in e for e in ev),
        "created": lambda: any("batch_id" in e for e in ev),
        "polling": lambda: any(e.get("status") == "in_progress" for e in ev),
        "merging": lambda: any(e.get("status") == "completed" for e in ev),
        "cleaning": lambda: any(e.get("merged") for e in ev),
    }[stage]()


def batches_on_service(url: str) -> int:
    seen, after = 0, ""
    while True:
        query = "?limit=100" + (f"&after={after}" if after else "")
        req = urllib.request.Request(url + "/v1/batches" + query, headers={"Authorization": f"Bearer {BENCH_KEY}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            page = json.loads(r.read())
        seen += len(page["data"])
        if not page["has_more"]:
            return seen
        after = page["last_id"]


def scenario(url: str, tmp: Path, manifest: Path, stage: str, shard_lines: int) -> dict[str, object]:
    out = tmp / f"{stage}.parquet"
    folder = Path(f"{out}.parts") / "batch"
    path = job(tmp / f"{stage}.toml", manifest, url, out, shard_lines)
    cmd = [sys.executable, "-m", "batch", "run", str(path), "--no-progress", "--poll-seconds", "1"]
    env = {**os.environ, "BENCH_API_KEY": BENCH_KEY}
    before = batches_on_service(url)
    started = time.monotonic()
    if stage != "none":
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and not reached(stage, events(folder)):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if final.returncode != 0:
        raise SystemExit(f"{stage}: the resumed run failed:\n{final.stderr[-2000:]}")
    ids = pq.read_table(out, columns=["id"]).column("id").to_pylist()
    parts = Path(f"{out}.parts").glob("b*.parquet")
    merged = Counter(i for p in parts for i in pq.read_table(p, columns=["_row"]).column("_row").to_pylist())
    ev = events(folder)
    shards = {e["shard"] for e in ev if "batch_id" in e}
    sizes = [int(str(e["bytes"])) for e in ev if "bytes" in e]
    resubmitted = sum(int(line.split()[3]) for line in final.stderr.splitlines() if "lines to resubmit" in line)
    n = pq.ParquetFile(manifest).metadata.num_rows
    report = subprocess.run(
        [sys.executable, "-m", "batch", "report", str(out), "--json"], cwd=ROOT, capture_output=True, text=True
    )
    cost = json.loads(report.stdout)["total"]["cost_usd"]
    return {
        "killed at": stage,
        "rows lost": n - len(set(ids)),
        "rows duplicated": len(ids) - len(set(ids)) + sum(c - 1 for c in merged.values()),
        "batches created": batches_on_service(url) - before,
        "shards": len(shards),
        "resubmitted (last run)": resubmitted,
        "largest shard": f"{max(sizes) / 1e6:.2f} MB = {max(sizes) / MAX_FILE_BYTES:.4f} of 200 MB",
        "wall s": round(wall, 1),
        "batch/standard price": round(cost["batch"] / cost["standard"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--shard-lines", type=int, default=2_500)
    parser.add_argument("--batch-seconds", type=float, default=4.0)
    parser.add_argument("--stages", default=",".join(STAGES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        manifest = distinct_images(tmp / "img", args.rows)
        emulator_args = [
            "--batch-deployment", "bulk=gpt-4o", "--batch-seconds", str(args.batch_seconds),
            "--latency", "zero", "--fault", "500:0.01",
        ]  # fmt: skip
        with emulator_process(*emulator_args) as url:
            for stage in args.stages.split(","):
                print(json.dumps(scenario(url, tmp, manifest, stage, args.shard_lines)), flush=True)


if __name__ == "__main__":
    main()
