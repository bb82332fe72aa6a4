"""Issue-7 benchmark: the client's own CPU per request, against an effectively unlimited deployment.

    .venv/bin/python bench/overhead.py [--rows 10000] [--sample-rows 3000] [--mix-rows 1000]
        [--repeat 2] [--verify quick,full] [--baseline-rev REV [--baseline-paths a,b]] [--profile]

The emulator runs in its own process with zero latency and a TPM no run can reach, so the client
never waits for tokens: what is left is the client's work per row (read and check the image, build
the body, pace, send, parse, record). Three workloads:

* ``small``: ``--rows`` rows over 12 small images (64x64 to 320x240 PNG, JPEG, WebP; 1 to 150 KB);
* ``sample``: ``--sample-rows`` rows over the 36 bundled sample images (``data/images``: 64x64 to
  2400x1800, but flat synthetic pictures of 1 to 60 KB, so cheap to send and dear to decode);
* ``mix``: ``--mix-rows`` rows over 10 images of realistic sizes: 12 MP and 2 MP camera-like JPEGs,
  a 1080p and a 720p UI-like PNG, a 1024x768 photo-like PNG, 1600x1200 and 3000x2000 WebP
  (30 KB to 1.8 MB each).

Each run is a fresh client subprocess (``batch.run.runner.Runner``, no progress bar): its CPU is
``time.process_time()`` over ``Runner.run()`` (all its threads; imports and manifest check
excluded), divided by the requests the emulator received. The emulator's CPU is read from
``/proc/<pid>/stat`` before and after, per request likewise. ``--verify`` runs each variant of
``[input].verify_images``. ``--baseline-rev REV`` also runs the code of git revision REV (``git
archive`` into a temporary folder; with ``--baseline-paths``, only those files of REV in a copy of
the working tree), interleaved with the current code so both see the same machine load.
``--profile`` records the client with py-spy (sampling, out of process, ``--gil``: only the thread
holding the GIL, i.e. Python-level CPU; C code that releases the GIL, such as Pillow's decoders,
is missed) on each workload and prints the largest costs.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    BENCH_KEY,
    ROOT,
    emulator_with_pid,
    job_file,
    process_cpu_s,
    stats,
)

UNLIMITED_TPM = 1_000_000_000

_CLIENT = r"""
import asyncio, json, re, sys, time
from pathlib import Path
import batch
from batch.run.runner import Runner
from batch.core.spec import load_spec
runner = Runner(load_spec(sys.argv[1]), show_progress=False)
assemble = runner.store.assemble
spent = {}
def timed_assemble(manifest):
    t = time.process_time()
    try:
        return assemble(manifest)
    finally:
        spent["assemble"] = time.process_time() - t
runner.store.assemble = timed_assemble
cpu0, wall0 = time.process_time(), time.monotonic()
summary = asyncio.run(runner.run())
cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
hwm = int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"cpu": cpu, "wall": wall, "ok": summary.tally.ok, "error": summary.tally.error,
                  "assemble": spent.get("assemble", 0.0), "hwm_mb": hwm / 1024, "code": batch.__file__}))
"""


# --- images -------------------------------------------------------------------------------------


def photo_like(size: tuple[int, int], seed: int) -> Image.Image:
    """Smooth random shapes plus sensor-like noise: compresses about like a photograph."""
    rng = np.random.default_rng(seed)
    w, h = size
    low = rng.integers(0, 256, (max(2, h // 64), max(2, w // 64), 3), dtype=np.uint8)
    base = Image.fromarray(low, "RGB").resize(size, Image.Resampling.BICUBIC)
    d = ImageDraw.Draw(base)
    for _ in range(12):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(w // 40 + 1, w // 6 + 2))
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    arr = np.asarray(base, dtype=np.int16) + rng.normal(0, 6, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def ui_like(size: tuple[int, int], seed: int) -> Image.Image:
    """Flat panels and lines of text: a screenshot."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, (246, 246, 248))
    d = ImageDraw.Draw(img)
    w, h = size
    d.rectangle([0, 0, w, 48], fill=(40, 60, 110))
    d.rectangle([0, 48, 220, h], fill=(232, 234, 238))
    for y in range(70, h - 20, 22):
        words = int(rng.integers(3, 14))
        text = " ".join(
            "".join(chr(97 + int(c)) for c in rng.integers(0, 26, int(rng.integers(2, 9)))) for _ in range(words)
        )
        d.text((240, y), text, fill=(30, 30, 30))
        d.text((12, y), text[:18], fill=(80, 80, 90))
    return img


def encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    params = {"JPEG": {"quality": 85}, "WEBP": {"quality": 80}}.get(fmt, {})
    im.save(buf, fmt, **params)
    return buf.getvalue()


SMALL = [((64, 64), "PNG"), ((64, 64), "JPEG"), ((64, 64), "WEBP"), ((128, 96), "PNG"), ((128, 96), "JPEG"),
         ((128, 96), "WEBP"), ((200, 150), "PNG"), ((200, 150), "JPEG"), ((200, 150), "WEBP"),
         ((320, 240), "PNG"), ((320, 240), "JPEG"), ((320, 240), "WEBP")]  # fmt: skip
MIX = [((4000, 3000), "JPEG", "photo"), ((1600, 1200), "JPEG", "photo"), ((1920, 1080), "PNG", "ui"),
       ((1280, 720), "PNG", "ui"), ((1024, 768), "PNG", "photo"), ((1600, 1200), "WEBP", "photo"),
       ((3000, 2000), "WEBP", "photo"), ((1024, 1024), "JPEG", "photo"), ((800, 600), "WEBP", "ui"),
       ((2048, 1536), "JPEG", "photo")]  # fmt: skip
EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def write_images(folder: Path, kind: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    specs = [(s, f, "photo") for s, f in SMALL] if kind == "small" else MIX
    for i, (size, fmt, content) in enumerate(specs):
        im = photo_like(size, i) if content == "photo" else ui_like(size, i)
        name = f"{kind}-{i:02d}-{size[0]}x{size[1]}.{EXT[fmt]}"
        (folder / name).write_bytes(encode(im, fmt))
        names.append(name)
    return names


def manifest(path: Path, names: list[str], rows: int) -> Path:
    pq.write_table(
        pa.table(
            {
                "id": [f"r{i:08d}" for i in range(rows)],
                "image": [f"img/{names[i % len(names)]}" for i in range(rows)],
                "detail": [("low", "high", "auto")[i % 3] for i in range(rows)],
            }
        ),
        path,
    )
    return path


# --- one measured run ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    workload: str
    variant: str
    rows: int
    requests: int
    client_cpu: float
    wall: float
    emulator_cpu: float
    assemble_cpu: float
    hwm_mb: float

    @property
    def client_us(self) -> float:
        return 1e6 * self.client_cpu / max(self.requests, 1)

    @property
    def emulator_us(self) -> float:
        return 1e6 * self.emulator_cpu / max(self.requests, 1)


def run_client(
    work: Path, url: str, pid: int, man: Path, code: Path, verify: str | None, concurrency: int, profile: Path | None
) -> tuple[dict[str, float], float, int]:
    """One fresh client subprocess; returns its figures, the emulator's CPU and requests received."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    job = job_file(
        work / "job.toml", man, url, work / "out.parquet", deployment="gpt-4o", model="gpt-4o", max_tokens=60,
        limits=f"tpm = {UNLIMITED_TPM}\nconcurrency = {concurrency}",
    )  # fmt: skip
    if verify is not None:
        marker = "allow_outside_paths = true\n"
        job.write_text(job.read_text().replace(marker, f'{marker}verify_images = "{verify}"\n'))
    env = {**os.environ, "BENCH_API_KEY": BENCH_KEY, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-c", _CLIENT, str(job)]
    if profile is not None:
        spy = Path(sys.executable).with_name("py-spy")
        cmd = [str(spy), "record", "--gil", "--format", "raw", "--rate", "250", "--output", str(profile), "--", *cmd]
    before_req = stats(url)["deployments"]["gpt-4o"]["received"]
    before = process_cpu_s(pid)
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=code, env=env)
    emu = process_cpu_s(pid) - before
    received = stats(url)["deployments"]["gpt-4o"]["received"] - before_req
    if done.returncode != 0:
        raise RuntimeError(f"client failed ({done.returncode}):\n{done.stderr[-3000:]}")
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line), emu, received


def baseline_tree(rev: str, into: Path, paths: list[str]) -> Path:
    """The ``batch`` package of git revision ``rev``, unpacked into ``into``; with ``paths``, the
    working tree's package with only those files taken from ``rev`` (to measure one change alone
    while others are editing the rest)."""
    into.mkdir(parents=True, exist_ok=True)
    if paths:
        shutil.copytree(ROOT / "batch", into / "batch", ignore=shutil.ignore_patterns("__pycache__"))
    data = subprocess.run(
        ["git", "archive", rev, *(paths or ["batch"])], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


# --- profile ------------------------------------------------------------------------------------

# Buckets for the profile: a sample goes to the first bucket any of its frames matches.
_BUCKETS = [
    (
        "image check (load_image: read + verify/decode)",
        ("load_image (batch/inputs/images.py", "quick_check", "_verify_"),
    ),
    ("data URL: base64", ("data_url_bytes", "to_data_url")),
    ("text tokens (tiktoken)", ("chat_prompt_tokens",)),
    (
        "path resolve + rest of the body (json.dumps ...)",
        ("compose (batch/plan/body.py", "plan (batch/plan/planner.py"),
    ),
    ("result journal (json + write per row)", ("add (batch/ledger/store.py",)),
    ("result parts (Parquet)", ("write_parts (batch/ledger/store.py",)),
    ("assemble result file", ("assemble (batch/ledger/assemble.py",)),
    ("HTTP send + receive (aiohttp)", ("send (batch/send/http.py",)),
    ("limiter", ("batch/send/ratelimit/",)),
    ("thread hand-off (to_thread, executor)", ("concurrent/futures/thread.py", "to_thread")),
    ("asyncio event loop", ("asyncio/",)),
]


# Samples that are not the measured work: idle threads py-spy still counts as running (blocked in
# a C call), and start-up (imports, tokenizer load, manifest check) that precedes Runner.run().
_IDLE_LEAVES = ("_worker (concurrent/futures/thread.py", "Condition.wait (", "EpollSelector.select (")


def summarise_profile(raw: Path, top: int = 12) -> None:
    buckets: dict[str, int] = defaultdict(int)
    leaves: dict[str, int] = defaultdict(int)
    total = idle = startup = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        if frames[-1].startswith(_IDLE_LEAVES):
            idle += n
            continue
        in_thread = frames[0].startswith("Thread._bootstrap (threading.py")
        if not in_thread and not any("asyncio/runners.py" in f for f in frames):
            startup += n
            continue
        total += n
        leaves[frames[-1]] += n
        name = "other"
        for label, keys in _BUCKETS:
            if any(k in f for f in frames for k in keys):
                name = label
                break
        buckets[name] += n
    print(
        f"    py-spy samples: {total} of the thread holding the GIL at 250 Hz (left out: {idle} idle, "
        f"{startup} of start-up)"
    )
    for name, n in sorted(buckets.items(), key=lambda kv: -kv[1]):
        print(f"      {100 * n / max(total, 1):5.1f} %  {name}")
    print("    hottest leaf functions:")
    for name, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:top]:
        print(f"      {100 * n / max(total, 1):5.1f} %  {name}")


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000, help="rows of the small-image workload (0: skip)")
    ap.add_argument("--sample-rows", type=int, default=3_000, help="rows over the bundled sample images (0: skip)")
    ap.add_argument("--mix-rows", type=int, default=1_000, help="rows of the realistic-size workload (0: skip)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each variant (median reported; 0: profile only)")
    ap.add_argument("--verify", default="quick,full", help="[input].verify_images variants of the current code")
    ap.add_argument("--baseline-rev", default=None, help="also run the code of this git revision (e.g. HEAD)")
    ap.add_argument(
        "--baseline-paths",
        default="",
        help="comma-separated files to take from --baseline-rev into a copy of the working tree (default: all)",
    )
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--profile", action="store_true", help="py-spy profile of the current code (first variant)")
    ap.add_argument("--keep-profile", type=Path, default=None, help="copy py-spy's raw stacks into this folder")
    args = ap.parse_args()
    verifies = [v.strip() for v in args.verify.split(",") if v.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        variants: list[tuple[str, Path, str | None]] = []
        if args.baseline_rev:
            paths = [x.strip() for x in args.baseline_paths.split(",") if x.strip()]
            tree = baseline_tree(args.baseline_rev, d / "baseline", paths)
            variants.append((f"baseline {args.baseline_rev}" + (" (some files)" if paths else ""), tree, None))
        variants += [(f"current, verify {v}", ROOT, v) for v in verifies]
        workloads = []
        if args.rows:
            workloads.append(("small", manifest(d / "small.parquet", write_images(d / "img", "small"), args.rows)))
        if args.sample_rows:
            samples = sorted((ROOT / "data" / "images").iterdir())
            (d / "img").mkdir(parents=True, exist_ok=True)
            for f in samples:
                shutil.copy(f, d / "img" / f.name)
            workloads.append(("sample", manifest(d / "sample.parquet", [f.name for f in samples], args.sample_rows)))
        if args.mix_rows:
            names = write_images(d / "img", "mix")
            sizes = [(n, (d / "img" / n).stat().st_size) for n in names]
            print("mix images: " + ", ".join(f"{n.split('-', 2)[2]} {s / 1e3:,.0f} KB" for n, s in sizes))
            workloads.append(("mix", manifest(d / "mix.parquet", names, args.mix_rows)))
        runs: list[Run] = []
        with emulator_with_pid(
            "--deployment", f"gpt-4o=gpt-4o:{UNLIMITED_TPM}", "--latency", "zero", "--seed", "1"
        ) as (url, pid):
            for wname, man in workloads:
                rows = pq.ParquetFile(man).metadata.num_rows
                for rep in range(args.repeat):
                    for vname, code, verify in variants:
                        fig, emu, received = run_client(d / "run", url, pid, man, code, verify, args.concurrency, None)
                        assert fig["ok"] + fig["error"] == rows, fig
                        r = Run(wname, vname, rows, received, fig["cpu"], fig["wall"], emu, fig["assemble"],
                                fig["hwm_mb"])  # fmt: skip
                        runs.append(r)
                        print(
                            f"  [{wname} #{rep + 1}] {vname:24s} client {r.client_us:7.0f} us/request  "
                            f"{rows / r.wall:7.0f} rows/s  emulator {r.emulator_us:6.0f} us/request  "
                            f"(errors {fig['error']:.0f}, assemble {r.assemble_cpu:.2f} s, peak RSS {r.hwm_mb:.0f} MB)",
                            flush=True,
                        )
            print()
            print(f"{'workload':8s} {'code':24s} {'client us/req':>14s} {'rows/s':>8s} {'emulator us/req':>16s}")
            for wname, _ in workloads if runs else []:
                base = None
                for vname, _code, _v in variants:
                    mine = [r for r in runs if r.workload == wname and r.variant == vname]
                    cu = statistics.median(r.client_us for r in mine)
                    rate = statistics.median(r.rows / r.wall for r in mine)
                    eu = statistics.median(r.emulator_us for r in mine)
                    base = cu if base is None else base
                    print(f"{wname:8s} {vname:24s} {cu:14.0f} {rate:8.0f} {eu:16.0f}   x{cu / base:.2f} of the first")
            if args.profile:
                # The baseline (when given) and the current code's first verify mode.
                profiled = [v for v in variants if v[2] is None][:1] + [v for v in variants if v[2] is not None][:1]
                for wname, man in workloads:
                    for k, (vname, code, verify) in enumerate(profiled):
                        raw = d / f"profile-{wname}-{k}.txt"
                        run_client(d / "run", url, pid, man, code, verify, args.concurrency, raw)
                        print(f"\n== profile, {wname}, {vname}")
                        summarise_profile(raw)
                        if args.keep_profile:
                            args.keep_profile.mkdir(parents=True, exist_ok=True)
                            shutil.copy(raw, args.keep_profile / raw.name)


if __name__ == "__main__":
    main()
