"""Issue-14 benchmark: one run over a pool of three emulator deployments of 60k, 150k and 450k TPM.

    .venv/bin/python bench/pool.py [--rows 3000] [--max-tokens 300] [--fail none|401|down] [--fail-at 60]

The emulator runs in its own process with realistic latency and serves the three deployments; the
client is one `batch run` with `--deployment a:60000 --deployment b:150000 --deployment c:450000`.
Printed, from the emulator's own books:
- each deployment's tokens charged in each full minute from the run's first admission ÷ its TPM,
  and the pool's (summed charges ÷ summed limits); target ≥ 0.95 of the summed limits;
- 429s ÷ requests (target ≤ 1 %);
- with ``--fail 401`` (deployment b answers 401 from ``--fail-at`` seconds on) or ``--fail down``
  (b resets every connection from then on): rows lost (target 0), rows answered by each deployment,
  and a + c's charges in each full minute ÷ their summed limits (the minutes where b shows 0 are
  after it left: the two left carry the whole run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_KEY, ROOT, emulator_process, job_file, sample_manifest, stats  # noqa: E402

LIMITS = {"a": 60_000, "b": 150_000, "c": 450_000}


def per_minute(st: dict[str, Any], start: float, minutes: int) -> list[int]:
    """Tokens this deployment charged in each full minute from ``start`` (unix time). Its timeline
    counts seconds from its own first event, which is its first admission (to within 1 s)."""
    sums = [0] * minutes
    if st.get("first_admission_at") is None:
        return sums
    offset = st["first_admission_at"] - start
    for t, _admitted, tokens, _throttled in st["timeline"]:
        m = int((t + offset) // 60)
        if 0 <= m < minutes:
            sums[m] += tokens
    return sums


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--max-tokens", type=int, default=300)
    ap.add_argument("--fail", choices=("none", "401", "down"), default="none")
    ap.add_argument("--fail-at", type=float, default=60.0)
    args = ap.parse_args()
    deployments = [f"--deployment={n}=gpt-4o:{tpm}" for n, tpm in LIMITS.items()]
    faults = []
    if args.fail != "none":
        kind = "401" if args.fail == "401" else "reset"
        faults = ["--fault", f"{kind}:1,deployment=b,start_s={args.fail_at}"]
    with tempfile.TemporaryDirectory() as tmp, emulator_process(*deployments, *faults) as url:
        d = Path(tmp)
        manifest = sample_manifest(d / "m.parquet", args.rows)
        out = d / "out.parquet"
        job = job_file(
            d / "job.toml", manifest, url, out, deployment="a", model="gpt-4o", max_tokens=args.max_tokens, limits=""
        )
        flags = [f"--deployment={n}:{tpm}" for n, tpm in LIMITS.items()]
        env = {**os.environ, "BENCH_API_KEY": BENCH_KEY}
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "batch", "run", str(job), "--no-progress", *flags],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - t0
        books = stats(url)["deployments"]
        result = pq.read_table(out).to_pylist() if out.exists() else []
    print(f"exit {proc.returncode}  wall {wall:.1f} s")
    print("\n".join(line for line in proc.stderr.splitlines() if "left the pool" in line))
    report(books, result, args)


def report(books: dict[str, dict[str, Any]], result: list[dict[str, Any]], args: argparse.Namespace) -> None:
    starts = [st["first_admission_at"] for st in books.values() if st.get("first_admission_at") is not None]
    ends = [st["last_admission_at"] for st in books.values() if st.get("last_admission_at") is not None]
    start, end = min(starts), max(ends)
    minutes = int((end - start) // 60)
    pooled = [0] * minutes
    rest = [0] * minutes  # a + c: the two that stay
    for name, tpm in LIMITS.items():
        sums = per_minute(books[name], start, minutes)
        pooled = [p + s for p, s in zip(pooled, sums, strict=True)]
        if name != "b":
            rest = [p + s for p, s in zip(rest, sums, strict=True)]
        print(f"{name} ({tpm // 1000}k TPM): per full minute ÷ TPM " + ", ".join(f"{s / tpm:.3f}" for s in sums))
    total = sum(LIMITS.values())
    ratios = [p / total for p in pooled]
    print(
        f"pool ({total // 1000}k TPM): per full minute ÷ summed TPM "
        + ", ".join(f"{r:.3f}" for r in ratios)
        + (f"  (mean {sum(ratios) / len(ratios):.3f}; target ≥ 0.95)" if ratios else "  (no full minute)")
    )
    received = sum(st["received"] for st in books.values())
    throttled = sum(st["throttled_tokens"] + st["throttled_requests"] for st in books.values())
    print(f"429s: {throttled} of {received} requests = {100 * throttled / max(received, 1):.2f} % (target ≤ 1 %)")
    status = Counter(r["status"] for r in result)
    lost = args.rows - len(result)
    print(f"rows: {args.rows}  in result {len(result)}  lost {lost} (target 0)  by status {dict(status)}")
    by = Counter((r["answered_by"] or "-").split(" @ ")[0] for r in result)
    print("answered by: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
    if args.fail != "none":
        left = sum(tpm for n, tpm in LIMITS.items() if n != "b")
        after = [p / left for p in rest]
        print(
            "a + c: per full minute ÷ (a + c) TPM (b gone from its failure on) "
            + (", ".join(f"{r:.3f}" for r in after) if after else "(no full minute after)")
        )


if __name__ == "__main__":
    main()
