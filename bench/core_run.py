"""Issue-3 benchmark: 300 rows, max_tokens 300, a 60,000-TPM emulator deployment with realistic latency.

    .venv/bin/python bench/core_run.py [--rows 300] [--tpm 60000] [--max-tokens 300]

Prints, from the emulator's own books (it runs in a separate process):
- tokens charged in each full minute from the first admission ÷ TPM (the figure: the last,
  partial minute only shows the job running out of rows);
- token utilisation over the whole span = tokens charged ÷ (TPM × (span + 60 s) / 60 s), the most
  a sliding 60 s window allows, counting the initial full window (a lower bound: a short job pays
  for its unused tail);
- request utilisation, likewise against RPM over 10 s windows; the binding one is the figure;
- 429s as % of requests; client CPU seconds (this process only) and CPU µs per row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch.core.spec import load_spec  # noqa: E402
from batch.run.runner import Runner  # noqa: E402
from bench.common import BENCH_KEY, emulator_process, job_file, sample_manifest, stats  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--tpm", type=int, default=60_000)
    ap.add_argument("--max-tokens", type=int, default=300)
    ap.add_argument("--latency", default="realistic")
    args = ap.parse_args()
    os.environ["BENCH_API_KEY"] = BENCH_KEY
    rpm = args.tpm * 6 // 1000
    with (
        tempfile.TemporaryDirectory() as tmp,
        emulator_process("--deployment", f"gpt-4o=gpt-4o:{args.tpm}", "--latency", args.latency) as url,
    ):
        d = Path(tmp)
        manifest = sample_manifest(d / "m.parquet", args.rows)
        job = job_file(
            d / "job.toml",
            manifest,
            url,
            d / "out.parquet",
            deployment="gpt-4o",
            model="gpt-4o",
            max_tokens=args.max_tokens,
            limits=f"tpm = {args.tpm}",
        )
        runner = Runner(load_spec(job), show_progress=False)
        cpu0, wall0 = time.process_time(), time.monotonic()
        summary = asyncio.run(runner.run())
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        st = stats(url)["deployments"]["gpt-4o"]
    span = st["last_admission_at"] - st["first_admission_at"]
    tok_util = st["tokens_charged"] / (args.tpm * (span + 60.0) / 60.0)
    req_util = st["admitted"] / (rpm / 6 * (span + 10.0) / 10.0)
    throttled = st["throttled_tokens"] + st["throttled_requests"]
    received = st["received"]
    binding = "tokens" if tok_util >= req_util else "requests"
    print(
        f"rows {args.rows}  ok {summary.tally.ok}  errors {summary.tally.error}  wall {wall:.1f} s  span {span:.1f} s"
    )
    print(f"tokens charged {st['tokens_charged']}  admitted {st['admitted']}  429s {throttled}/{received}")
    print(f"token utilisation   {tok_util:.3f}  (tokens charged / what a {args.tpm} TPM window allows)")
    print(f"request utilisation {req_util:.3f}  (admitted / what {rpm} RPM over 10 s windows allows)")
    print(f"binding: {binding} -> utilisation {max(tok_util, req_util):.3f} (target >= 0.95)")
    print(f"429s: {100 * throttled / max(received, 1):.2f} % of requests (target <= 2 %)")
    print(f"client CPU: {cpu:.2f} s total, {1e6 * cpu / max(received, 1):.0f} us per request")
    print(f"limiter scale learned: {runner.limiter.scale:.3f}")
    # Tokens charged in each full 60 s window from the first admission (the server's own timeline).
    per_minute: dict[int, int] = {}
    for t, _admitted, tokens, _throttled in st["timeline"]:
        per_minute[int(t // 60)] = per_minute.get(int(t // 60), 0) + tokens
    full = [per_minute.get(m, 0) / args.tpm for m in range(int(span // 60))]
    print(
        "tokens charged per full minute / TPM: "
        + ", ".join(f"{x:.3f}" for x in full)
        + (f"  (mean {sum(full) / len(full):.3f}; target >= 0.95)" if full else "")
    )
    when = [f"{t}s" for t, _a, _tok, thr in st["timeline"] if thr]
    print("seconds with 429s: " + (", ".join(when) if when else "none"))


if __name__ == "__main__":
    main()
