"""Issue-14 benchmarks: pacing in a shared world. Every case of point 1, one at a time, side by side.

    .venv/bin/python bench/shared_world.py                      # every scenario (~22 minutes)
    .venv/bin/python bench/shared_world.py --scenario two-runs  # one (repeatable); --list names them
    .venv/bin/python bench/shared_world.py --json results.json

Each scenario gets its own emulator process (a fresh deployment, a request log big enough for the
whole run), runs our client as the real CLI (``python -m batch run``, in its own process) and, where
it applies, the other client (``bench/others.py``) or the naive openai-SDK peer (``bench/peer.py``).
Every figure comes from the emulator's request log (when it received each request, what it charged,
who sent it), never from the client:

- ``other-steady`` / ``other-bursty``: another client asks for ~40 % of a 150k deployment (steady:
  2 requests a second; bursty: 100 requests every 15 s), from 20 s before our run until 120 s into
  it. Share = our tokens ÷ (TPM − theirs) over [60 s, 120 s) (after our first window), and our
  tokens ÷ 0.6 TPM (what they leave if they get what they ask: a client that squeezes them out
  scores well on the first and shows it here, beside their 429s); after = our tokens ÷ TPM over
  the second window after they stop; 429s = ours, over the whole run.
- ``resume-busy``: 1,500 low-detail rows, 200k TPM / 1,200 RPM, max_tokens 50: once uninterrupted,
  once SIGKILLed 8 s in and rerun at once; wall time of each, the rerun's 429s, and the seconds from
  the killed run's traffic ageing out until the rerun admits at ≥ 0.9 of its steady rate.
- ``two-runs``: two of our runs at once on one 60k deployment (mixed detail, max_tokens 300):
  together and each ÷ TPM over [60 s, 180 s), 429s.
- ``rpm-max-only`` / ``rpm-prompt-max`` (+ ``peer-…``): a 60k deployment with 60 requests per 10 s,
  mixed rows, max_tokens 300, the server charging only max_tokens (300 rows) or prompt + images +
  max (150 rows). Span ratio = the time a zero-overhead client needs to admit the same requests
  (same charges, same order) under both windows ÷ our time from first to last admission.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_KEY, ROOT, emulator_process, sample_manifest  # noqa: E402
from bench.others import (  # noqa: E402
    Load,
    admissions,
    ideal_span,
    other_client,
    request_log,
    throttled,
    tokens_between,
)

DEPLOYMENT = "gpt-4o"
PROMPT = "Describe the image."


def emulator_config(path: Path, tpm: int, *, rpm: int | None = None, charge_rule: str = "prompt+max") -> Path:
    path.write_text(
        'latency = "realistic"\n'
        f'charge_rule = "{charge_rule}"\n'
        "log_limit = 200000\n"
        f'[[deployments]]\nname = "{DEPLOYMENT}"\nmodel = "gpt-4o"\ntpm = {tpm}\n' + (f"rpm = {rpm}\n" if rpm else "")
    )
    return path


def job(path: Path, manifest: Path, url: str, out: Path, *, tag: str, max_tokens: int, tpm: int, rpm: int) -> Path:
    path.write_text(f"""
[input]
manifest = "{manifest}"
allow_outside_paths = true
[prompt]
user = "{PROMPT} [run {tag}]"
max_tokens = {max_tokens}
[endpoint]
kind = "azure"
url = "{url}"
deployment = "{DEPLOYMENT}"
model = "gpt-4o"
api_key_env = "BENCH_API_KEY"
[limits]
tpm = {tpm}
rpm = {rpm}
[output]
path = "{out}"
""")
    return path


def start_ours(job_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_API_KEY": BENCH_KEY}
    cmd = [sys.executable, "-m", "batch", "run", str(job_path), "--no-progress"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def is_ours(c: str) -> bool:
    return c != "other"


# ---- scenarios ------------------------------------------------------------------------------------


def other(name: str, load: Load, tmp: Path) -> dict[str, Any]:
    tpm, lead, on_for, after = 150_000, 20.0, 120.0, 120.0
    with emulator_process("--config", str(emulator_config(tmp / "emu.toml", tpm))) as url:
        manifest = sample_manifest(tmp / "m.parquet", 1500)
        jp = job(tmp / "job.toml", manifest, url, tmp / "out.parquet", tag="A", max_tokens=300, tpm=tpm, rpm=900)

        async def both() -> tuple[Any, float]:
            t_other = time.time()
            gen = asyncio.ensure_future(other_client(url, BENCH_KEY, DEPLOYMENT, load, t_other + lead + on_for))
            await asyncio.sleep(lead)
            t0 = time.time()
            proc = start_ours(jp)
            tally = await gen
            await asyncio.sleep(max(0.0, t0 + on_for + after - time.time()))
            stop(proc)
            return tally, t0

        tally, t0 = asyncio.run(both())
        log = request_log(url)
    adm = admissions(log)
    theirs = tokens_between(adm, lambda c: c == "other", t0 + 60, t0 + on_for)
    ours = tokens_between(adm, is_ours, t0 + 60, t0 + on_for)
    full = tokens_between(adm, is_ours, t0 + on_for + 60, t0 + on_for + 120)
    n429, answered = throttled(log, is_ours, t0, t0 + on_for + after)
    o429, oanswered = throttled(log, lambda c: c == "other", t0, t0 + on_for)
    share = ours / max(1, tpm - theirs)
    return {
        "scenario": name,
        "figures": {
            "others_share_of_tpm": round(theirs / tpm, 3),
            "share_of_what_is_left": round(share, 3),
            # What they asked for (0.4 of the TPM), not what they got: squeezing them out is no share.
            "share_of_what_they_leave_asking_40pct": round(ours / (0.6 * tpm), 3),
            "after_they_stop": round(full / tpm, 3),
            "pct_429": round(100 * n429 / max(1, answered), 2),
            "other_429_pct": round(100 * o429 / max(1, oanswered), 2),
        },
        "targets": {
            "share_of_what_is_left": 0.90,
            "after_they_stop": 0.97,
            "pct_429": 1.0 if load.pattern == "steady" else 5.0,
        },
        "detail": {"other": {"sent": tally.sent, "ok": tally.ok, "429": tally.throttled, "gave_up": tally.failed}},
    }


def resume_busy(tmp: Path) -> dict[str, Any]:
    tpm, rows = 200_000, 1500
    out: dict[str, Any] = {}
    for mode in ("uninterrupted", "killed-then-resumed"):
        d = tmp / mode
        d.mkdir()
        with emulator_process("--config", str(emulator_config(d / "emu.toml", tpm))) as url:
            manifest = sample_manifest(d / "m.parquet", rows, ["low"])
            jp = job(d / "job.toml", manifest, url, d / "out.parquet", tag="A", max_tokens=50, tpm=tpm, rpm=1200)
            t0 = time.time()
            if mode == "killed-then-resumed":
                first = start_ours(jp)
                time.sleep(8.0)
                stop(first, signal.SIGKILL)
                killed_at = time.time()
            proc = start_ours(jp)
            proc.wait()
            wall = time.time() - t0
            log = request_log(url)
        adm = admissions(log)
        entry: dict[str, Any] = {"wall_s": round(wall, 1), "exit": proc.returncode}
        if mode == "killed-then-resumed":
            before = [a for a in adm if a.time < killed_at]
            rerun = [a for a in adm if a.time >= killed_at]
            entry["killed_run_admitted"] = len(before)
            entry["rerun_429s"], entry["rerun_answered"] = throttled(log, is_ours, killed_at, 1e18)
            # Rerun rows per 10 s, so one can see how soon it ran at full speed.
            start = killed_at
            entry["rerun_rows_per_10s"] = (
                [
                    sum(1 for a in rerun if start + 10 * k <= a.time < start + 10 * (k + 1))
                    for k in range(int((rerun[-1].time - start) // 10) + 1)
                ]
                if rerun
                else []
            )
            thr = [e["time"] for e in log if e.get("status") == 429 and e["time"] >= killed_at]
            entry["rerun_429s_per_10s"] = [
                sum(1 for t in thr if start + 10 * k <= t < start + 10 * (k + 1))
                for k in range(len(entry["rerun_rows_per_10s"]))
            ]
            if before:
                entry["old_traffic_gone_after_s"] = round(before[-1].time + 60 - killed_at, 1)
        else:
            entry["429s"], entry["answered"] = throttled(log, is_ours, 0, 1e18)
        out[mode] = entry
    ratio = out["killed-then-resumed"]["wall_s"] / max(0.1, out["uninterrupted"]["wall_s"])
    return {"scenario": "resume-busy", "figures": {"resumed_wall_over_uninterrupted": round(ratio, 2)}, "detail": out}


def two_runs(tmp: Path) -> dict[str, Any]:
    tpm, seconds = 60_000, 180.0
    with emulator_process("--config", str(emulator_config(tmp / "emu.toml", tpm))) as url:
        procs = []
        for tag in ("A", "B"):
            d = tmp / tag
            d.mkdir()
            manifest = sample_manifest(d / "m.parquet", 800)
            procs.append(
                start_ours(
                    job(d / "job.toml", manifest, url, d / "out.parquet", tag=tag, max_tokens=300, tpm=tpm, rpm=360)
                )
            )
        t0 = time.time()
        time.sleep(seconds)
        for p in procs:
            stop(p)
        log = request_log(url)
    adm = admissions(log)
    a = tokens_between(adm, lambda c: c == "A", t0 + 60, t0 + seconds) / (tpm * (seconds - 60) / 60)
    b = tokens_between(adm, lambda c: c == "B", t0 + 60, t0 + seconds) / (tpm * (seconds - 60) / 60)
    n429, answered = throttled(log, is_ours, t0, t0 + seconds)
    return {
        "scenario": "two-runs",
        "figures": {
            "together": round(a + b, 3),
            "run_a": round(a, 3),
            "run_b": round(b, 3),
            "pct_429": round(100 * n429 / max(1, answered), 2),
        },
        "targets": {"together": 0.95, "pct_429": 1.0},
    }


def rpm_bound(name: str, charge_rule: str, rows: int, peer: bool, tmp: Path) -> dict[str, Any]:
    tpm, per_window = 60_000, 60
    with emulator_process(
        "--config", str(emulator_config(tmp / "emu.toml", tpm, rpm=6 * per_window, charge_rule=charge_rule))
    ) as url:
        manifest = sample_manifest(tmp / "m.parquet", rows)
        t0 = time.time()
        if peer:
            import pyarrow.parquet as pq

            from bench.peer import run_peer

            t = pq.read_table(manifest, columns=["image", "detail"]).to_pydict()
            res = asyncio.run(
                run_peer(
                    url=url,
                    api_key=BENCH_KEY,
                    deployment=DEPLOYMENT,
                    rows=list(zip(t["image"], t["detail"], strict=True)),
                    prompt=PROMPT,
                    max_tokens=300,
                    concurrency=32,
                    seconds=600,
                )
            )
            detail: dict[str, Any] = {
                "peer": {"ok": res.ok, "failed_429": res.failed_429, "failed_other": res.failed_other}
            }
        else:
            jp = job(
                tmp / "job.toml",
                manifest,
                url,
                tmp / "out.parquet",
                tag="A",
                max_tokens=300,
                tpm=tpm,
                rpm=6 * per_window,
            )
            proc = start_ours(jp)
            proc.wait()
            detail = {"exit": proc.returncode}
        log = request_log(url)
    adm = [a for a in admissions(log) if a.time >= t0]
    span = adm[-1].time - adm[0].time if len(adm) > 1 else float("nan")
    ideal = ideal_span([a.tokens for a in adm], tpm, per_window)
    n429, answered = throttled(log, lambda c: True, t0, 1e18)
    return {
        "scenario": name,
        "figures": {
            "span_ratio": round(ideal / span, 3),
            "pct_429": round(100 * n429 / max(1, answered), 2),
            "admitted": len(adm),
            "span_s": round(span, 1),
            "ideal_s": round(ideal, 1),
        },
        "targets": {} if peer else {"span_ratio": 0.97, "pct_429": 1.0},
        "detail": detail,
    }


SCENARIOS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "other-steady": lambda t: other("other-steady", Load("steady", 2, 480), t),
    "other-bursty": lambda t: other("other-bursty", Load("bursty", 100, 135, every=15.0), t),
    "resume-busy": resume_busy,
    "two-runs": two_runs,
    "rpm-max-only": lambda t: rpm_bound("rpm-max-only", "max-only", 300, False, t),
    "peer-rpm-max-only": lambda t: rpm_bound("peer-rpm-max-only", "max-only", 300, True, t),
    "rpm-prompt-max": lambda t: rpm_bound("rpm-prompt-max", "prompt+max", 150, False, t),
    "peer-rpm-prompt-max": lambda t: rpm_bound("peer-rpm-prompt-max", "prompt+max", 150, True, t),
}


def verdict(r: dict[str, Any]) -> str:
    targets, f = r.get("targets") or {}, r["figures"]
    if not targets:
        return "(reference)"
    ok = all(f[k] <= v if k.startswith("pct") else f[k] >= v for k, v in targets.items())
    return "met" if ok else "MISSED"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", action="append", default=[], metavar="NAME")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write (append to) results as JSON")
    args = ap.parse_args()
    if args.list:
        print("\n".join(SCENARIOS))
        return
    names = args.scenario or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; --list shows them")
    results = []
    for name in names:  # one at a time: they share the machine's two cores
        with tempfile.TemporaryDirectory() as tmp:
            started = time.monotonic()
            r = SCENARIOS[name](Path(tmp))
            r["seconds"] = round(time.monotonic() - started)
        results.append(r)
        print(
            f"{name:22} {verdict(r):11} {json.dumps(r['figures'])}  targets {json.dumps(r.get('targets', {}))}",
            flush=True,
        )
        if r.get("detail"):
            print(f"{'':22} {json.dumps(r['detail'])}", flush=True)
        if args.json:
            old = json.loads(args.json.read_text()) if args.json.exists() else []
            args.json.write_text(json.dumps([*old, r], indent=1))


if __name__ == "__main__":
    main()
