"""Issue-6 benchmark: is `batch estimate` right to the token, and how fast is it?

    .venv/bin/python bench/estimate_accuracy.py [--rows 10000] [--throughput-rows 100000]
                                                [--skip-sample] [--skip-generated] [--skip-throughput]

(a) the sample set (jobs/caption-sample.toml and its manifest, its own prompts and details) and
(b) a generated manifest of ``--rows`` rows over images of many sizes (1 to 8 tiles at high
detail, rounding edge cases included), formats, detail levels, per-row prompts (some non-ASCII)
and max_tokens: each is estimated with the library function (:func:`batch.estimate.job.estimate_job`,
no network), then really run against an emulator in its own process (zero latency, a TPM no run
can reach), then reported on (:func:`batch.report.job.build_report`). Printed: estimated vs reported
prompt tokens and the total error (targets: exact for image tokens, within 1% overall), the share
of rows whose estimate is exact, and image tokens per row against the emulator's own books
(its request log records each request's image tokens, joined on the request id).
(c) `batch estimate` throughput on ``--throughput-rows`` distinct local image files, in a fresh
subprocess: rows/s and peak RSS (VmHWM from /proc: ``ru_maxrss`` survives exec, so a child would
inherit this larger process's peak).
(d) `batch report` on a synthetic result file of ``--report-rows`` rows (answers included, never
read), in a fresh subprocess: rows/s and peak RSS, to show the streamed report stays bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch.core import JobSpec, load_spec, with_overrides  # noqa: E402
from batch.estimate.job import estimate_job  # noqa: E402
from batch.report.job import build_report  # noqa: E402
from batch.run.runner import run_job  # noqa: E402
from batch.send.auth import KeyCredential  # noqa: E402
from bench.common import BENCH_KEY, ROOT, emulator_process, job_file  # noqa: E402

UNLIMITED_TPM = 1_000_000_000
MODEL = "gpt-4o-2024-08-06"
# Sizes spanning gpt-4o's high-detail tile counts (1 to 8 tiles), both scaling steps, no-upscale
# and integer-rounding edges (1023x1025, 769x1537, 2049x1023 ...).
SIZES = [
    (64, 64), (300, 200), (512, 512), (513, 512), (700, 400), (1024, 1024), (1024, 768), (1500, 1000),
    (2048, 2048), (2048, 4096), (4096, 1024), (1800, 2400), (3000, 600), (1000, 3000), (1200, 1600),
    (800, 3000), (2000, 1500), (900, 1400), (1536, 512), (1023, 1025), (769, 1537), (2049, 1023),
    (767, 2300), (1537, 769), (5, 3000), (2500, 2500),
]  # fmt: skip
FORMATS = [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")]
PROMPTS = [
    None,
    None,
    "List every number you can read, one per line.",
    "Décrivez l'image en une phrase, s'il vous plaît — précisément.",
    "この画像を説明してください。",
    "What is the total amount, e.g. -9,824,995.53? Answer with digits only.",
]
DETAILS = ["low", "high", "auto", None]


@dataclass(frozen=True, slots=True)
class Figures:
    name: str
    rows: int
    estimated_prompt: int  # batch estimate, before the run
    run_estimated_prompt: int  # the run's own per-row estimates, summed
    reported_prompt: int  # batch report: billed usage
    exact_rows: int
    compared_rows: int
    estimated_image: int
    emulator_image: int
    image_exact_rows: int
    image_rows: int
    seconds_run: float


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--throughput-rows", type=int, default=100_000)
    ap.add_argument("--skip-sample", action="store_true")
    ap.add_argument("--skip-generated", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--report-rows", type=int, default=1_000_000, help="rows of the synthetic file for (d); 0: skip")
    args = ap.parse_args()
    os.environ["BENCH_API_KEY"] = BENCH_KEY
    results: list[Figures] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if not (args.skip_sample and args.skip_generated):
            with emulator_process(
                "--deployment", f"gpt-4o={MODEL}:{UNLIMITED_TPM}", "--latency", "zero", "--seed", "1"
            ) as url:
                if not args.skip_sample:
                    spec = load_spec(ROOT / "jobs" / "caption-sample.toml")
                    results.append(measure("sample set (36 rows)", spec, url, d / "sample"))
                if not args.skip_generated:
                    manifest = generated_manifest(d / "gen", args.rows)
                    job = job_file(
                        d / "gen" / "job.toml", manifest, url, d / "gen" / "out.parquet",
                        deployment="gpt-4o", model="gpt-4o", max_tokens=120, limits="concurrency = 32",
                    )  # fmt: skip
                    results.append(measure(f"generated ({args.rows:,} rows)", load_spec(job), url, d / "gen"))
        for f in results:
            print_figures(f)
        if not args.skip_throughput:
            throughput(d / "tp", args.throughput_rows)
        if args.report_rows:
            report_scale(d / "rep", args.report_rows)


def measure(name: str, spec: JobSpec, url: str, work: Path) -> Figures:
    work.mkdir(parents=True, exist_ok=True)
    out = work / "results.parquet"
    spec = with_overrides(spec, endpoint=url, out=str(out), tpm=UNLIMITED_TPM, concurrency=32)
    t0 = time.monotonic()
    estimate = estimate_job(spec)
    print(f"[{name}] estimate: {time.monotonic() - t0:.1f} s", flush=True)
    urllib.request.urlopen(urllib.request.Request(url + "/_emulator/reset", method="POST"), timeout=10).read()
    t0 = time.monotonic()
    asyncio.run(run_job(spec, credential=KeyCredential(BENCH_KEY, bearer=False), show_progress=False))
    seconds = time.monotonic() - t0
    print(f"[{name}] run: {seconds:.1f} s", flush=True)
    report = build_report(out)
    log = emulator_log(url)
    table = pq.read_table(out, columns=["request_id", "estimated_image_tokens", "prompt_tokens"]).to_pylist()
    image_pairs = [
        (r["estimated_image_tokens"], log[r["request_id"]])
        for r in table
        if r["prompt_tokens"] is not None and r["request_id"] in log
    ]
    return Figures(
        name=name,
        rows=report.rows,
        estimated_prompt=estimate.total.prompt_tokens,
        run_estimated_prompt=report.accuracy.estimated,
        reported_prompt=report.total.prompt_tokens,
        exact_rows=report.accuracy.exact_rows,
        compared_rows=report.accuracy.rows,
        estimated_image=estimate.total.image_tokens,
        emulator_image=sum(a for _, a in image_pairs),
        image_exact_rows=sum(e == a for e, a in image_pairs),
        image_rows=len(image_pairs),
        seconds_run=seconds,
    )


def emulator_log(url: str) -> dict[str, int]:
    """request id -> image tokens, from the emulator's own request log."""
    with urllib.request.urlopen(url + "/_emulator/requests", timeout=60) as r:
        data: Any = json.loads(r.read())
    entries = data["requests"] if isinstance(data, dict) else data
    return {e["request_id"]: e["image_tokens"] for e in entries if e.get("image_tokens") is not None}


def print_figures(f: Figures) -> None:
    err = 100 * (f.estimated_prompt - f.reported_prompt) / max(f.reported_prompt, 1)
    img_err = 100 * (f.estimated_image - f.emulator_image) / max(f.emulator_image, 1)
    print(f"\n== {f.name}: {f.rows:,} rows, run {f.seconds_run:.1f} s")
    diff = f.estimated_prompt - f.reported_prompt
    exact = 100 * f.exact_rows / max(f.compared_rows, 1)
    lines = [
        f"  prompt tokens: estimated {f.estimated_prompt:,} (batch estimate), reported {f.reported_prompt:,} "
        f"(batch report): error {diff:+,} = {err:+.4f}%  (target: within 1%)",
        f"  run's per-row estimates summed: {f.run_estimated_prompt:,} (same rows as batch estimate)",
        f"  rows whose prompt estimate is exact: {f.exact_rows:,} of {f.compared_rows:,} ({exact:.2f}%)",
        f"  image tokens: estimated {f.estimated_image:,}, emulator {f.emulator_image:,}: {img_err:+.4f}%; "
        f"exact rows {f.image_exact_rows:,} of {f.image_rows:,}  (target: exact)",
    ]
    print("\n".join(lines))


# --- the generated manifest -------------------------------------------------------------------


def make_image(size: tuple[int, int], fmt: str, seed: int) -> bytes:
    img = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    ImageDraw.Draw(img).rectangle([0, 0, size[0] // 3, size[1] // 4], fill=(250, 250, 250))
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 70} if fmt != "PNG" else {}))
    return buf.getvalue()


def generated_manifest(folder: Path, rows: int) -> Path:
    """``rows`` rows over len(SIZES) x 3 distinct files; detail, prompt and max_tokens vary by row."""
    images = folder / "img"
    images.mkdir(parents=True, exist_ok=True)
    files = []
    for i, size in enumerate(SIZES):
        for j, (fmt, ext) in enumerate(FORMATS):
            path = images / f"{size[0]}x{size[1]}.{ext}"
            path.write_bytes(make_image(size, fmt, i * 3 + j))
            files.append(path.name)
    table = pa.table(
        {
            "id": [f"g{i:06d}" for i in range(rows)],
            "image": [f"img/{files[(i * 7) % len(files)]}" for i in range(rows)],
            "detail": [DETAILS[(i // 3) % len(DETAILS)] for i in range(rows)],
            "prompt": [PROMPTS[(i // 5) % len(PROMPTS)] for i in range(rows)],
            "max_tokens": pa.array([[None, 40, 200][i % 3] for i in range(rows)], pa.int64()),
        }
    )
    path = folder / "manifest.parquet"
    pq.write_table(table, path)
    return path


# --- estimate throughput ----------------------------------------------------------------------

_THROUGHPUT = """
import re, resource, sys, time
from pathlib import Path
from batch.estimate.job import estimate_job
from batch.core.spec import load_spec
spec = load_spec(sys.argv[1])
t0 = time.perf_counter()
report = estimate_job(spec)
seconds = time.perf_counter() - t0
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(report.rows_read, report.total.rows, seconds, hwm // 1024, maxrss)
"""


def throughput(folder: Path, rows: int) -> None:
    """`batch estimate` over ``rows`` distinct local files (copies of 78 encodings), in a subprocess."""
    images = folder / "img"
    images.mkdir(parents=True, exist_ok=True)
    templates = [
        (ext, make_image(size, fmt, i))
        for i, size in enumerate(SIZES)
        for fmt, ext in FORMATS
        if size[0] * size[1] <= 4_200_000
    ]
    t0 = time.monotonic()
    names = []
    for i in range(rows):
        ext, data = templates[i % len(templates)]
        sub = images / f"{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(exist_ok=True)
        name = f"{i // 1000:03d}/{i:06d}.{ext}"
        (images / name).write_bytes(data)
        names.append(f"img/{name}")
    manifest = folder / "manifest.parquet"
    pq.write_table(
        pa.table({"id": list(range(rows)), "image": names, "detail": [DETAILS[i % 4] for i in range(rows)]}),
        manifest,
    )
    job = job_file(
        folder / "job.toml", manifest, "http://127.0.0.1:9", folder / "out.parquet",
        deployment="gpt-4o", model="gpt-4o", max_tokens=300, limits="tpm = 450000",
    )  # fmt: skip
    print(f"\n== estimate throughput: wrote {rows:,} image files in {time.monotonic() - t0:.1f} s", flush=True)
    done = subprocess.run(
        [sys.executable, "-c", _THROUGHPUT, str(job)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    read, sent, seconds, hwm, maxrss = done.stdout.split()
    rate = int(read) / float(seconds)
    print(
        f"  rows {int(read):,} ({int(sent):,} estimated) in {float(seconds):.1f} s: {rate:,.0f} rows/s; "
        f"peak RSS {hwm} MB (VmHWM; ru_maxrss says {maxrss} MB)"
    )


_REPORT = """
import re, sys, time
from pathlib import Path
from batch.report.job import build_report
t0 = time.perf_counter()
report = build_report(Path(sys.argv[1]))
seconds = time.perf_counter() - t0
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(report.rows, seconds, hwm // 1024, f"{report.total.cost_standard:.2f}")
"""


def report_scale(folder: Path, rows: int) -> None:
    """A result file of ``rows`` rows in the run's schema (row groups of 65,536), then `batch report`."""
    import numpy as np
    import pyarrow.compute as pc

    from batch.ledger.schema import RESULT_SCHEMA

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.parquet"
    schema = pa.schema([("id", pa.string()), *RESULT_SCHEMA])
    t0 = time.monotonic()
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for start in range(0, rows, 65_536):
            i = np.arange(start, min(start + 65_536, rows), dtype=np.int64)
            n = len(i)
            prompt = 100 + (i * 37) % 1400
            completion = 20 + (i * 13) % 100
            answer = pc.take(pa.array(["the scene shows a small table " * 8]), pa.array(np.zeros(n, np.int32)))
            text = {name: pa.nulls(n, pa.string()) for name in ("error_code", "error_message", "request_id")}
            cols = {
                "id": pa.array([f"r{k:08d}" for k in i.tolist()]),
                "answer": answer,
                "finish_reason": pa.array(np.where(i % 7 == 0, "length", "stop")),
                "prompt_tokens": pa.array(prompt),
                "completion_tokens": pa.array(completion),
                "total_tokens": pa.array(prompt + completion),
                "status": pa.array(np.full(n, "ok")),
                **text,
                "attempts": pa.array(np.ones(n, np.int32)),
                "latency_ms": pa.array(np.full(n, 800.0)),
                "model": pa.array(np.full(n, MODEL)),
                "detail_used": pa.array(np.array(["low", "high", "auto"])[i % 3]),
                "estimated_image_tokens": pa.array(prompt - 20),
                "estimated_prompt_tokens": pa.array(prompt + (i % 5 == 0)),
                "image_note": pa.nulls(n, pa.string()),
            }
            # Columns an image row leaves empty (pages, OCR, grounding, ...): nulls of the writer's types,
            # so the synthetic file keeps the run's schema however many columns it grows.
            cols |= {f.name: pa.nulls(n, f.type) for f in schema if f.name not in cols}
            writer.write_table(pa.table(cols, schema=schema))
    size = path.stat().st_size / 1e6
    print(f"\n== report at scale: wrote {rows:,} result rows ({size:.0f} MB) in {time.monotonic() - t0:.1f} s")
    done = subprocess.run(
        [sys.executable, "-c", _REPORT, str(path)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    read, seconds, hwm, usd = done.stdout.split()
    print(
        f"  batch report: {int(read):,} rows in {float(seconds):.1f} s: {int(read) / float(seconds):,.0f} rows/s; "
        f"peak RSS {hwm} MB (VmHWM); cost ${usd}"
    )


if __name__ == "__main__":
    main()
