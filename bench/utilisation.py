"""Issue-7 benchmark suite: how much of a deployment's limits the client uses, and how many 429s it costs.

    .venv/bin/python bench/utilisation.py                      # every scenario, 3 measured minutes each
    .venv/bin/python bench/utilisation.py --scenario mixed-60k --scenario peer-mixed-60k --minutes 4
    .venv/bin/python bench/utilisation.py --group wrong        # one group: deployments, peer, wrong, fixed, latency
    .venv/bin/python bench/utilisation.py --quick              # smoke: 1 minute each
    .venv/bin/python bench/utilisation.py --list

Each scenario runs in its own process with its own emulator process (fresh windows and books), a
few at a time (``--jobs``), and runs for ``--minutes`` full minutes from the emulator's first
admission; the client is then stopped, so every measured minute is a full one with rows to spare.
Figures come from the emulator's books (``/_emulator/stats``), never the client's:

- tokens charged in each full minute ÷ TPM, and admitted requests in each full minute ÷ RPM;
  whichever is higher is the binding limit and its ratio is the figure (mean over the minutes,
  and over the minutes after the first window, which the opening burst can flatter or hurt);
- 429s (token and call windows) ÷ requests the emulator answered in the measured minutes.

With fixed windows the minutes are the emulator's own windows (its clock is reset just before the
client starts). The peer (``bench/peer.py``) is the naive ``openai``-SDK client with a semaphore.
``--save DIR`` keeps each scenario's stats (with the per-second timeline) and client log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH_KEY, ROOT, emulator_process, job_file, sample_manifest, stats  # noqa: E402

DEPLOYMENT = "gpt-4o"
PROMPT = "Describe the image."


@dataclass(frozen=True, slots=True)
class Deploy:
    tpm: int
    details: tuple[str, ...]
    max_tokens: int
    what: str


DEPLOYS = {
    # ~100 prompt tokens (low detail: 85 per image) + 40 max tokens = ~140 a request: 60 RPM binds at ~8,400 TPM.
    "10k": Deploy(10_000, ("low",), 40, "10k TPM / 60 RPM, low detail, max_tokens 40 (RPM binds)"),
    "60k": Deploy(60_000, ("low", "high", "auto"), 300, "60k TPM / 360 RPM, low/high/auto, max_tokens 300"),
    "450k": Deploy(450_000, ("high",), 300, "450k TPM / 2,700 RPM, high detail, max_tokens 300"),
}


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    group: str
    deploy: str
    what: str
    client: str = "ours"  # "ours" | "peer"
    limits: str = "exact"  # "exact" | "2x" | "none": what the job's [limits] claims
    concurrency: int = 0  # ours: [limits].concurrency (0 = auto); the peer: its semaphore (0 = --peer-concurrency)
    charge_rule: str = "prompt+max"
    window_mode: str = "sliding"
    latency: str = "realistic"  # the emulator's LatencyModel: realistic = 1.2 s + 17 ms per output token
    answer_tokens: int = 60
    limit_headers: bool = True
    target: float | None = 0.97  # binding-limit ratio, mean over the measured minutes
    target_after_first: float | None = None  # mean over the minutes after the first window
    max_429_pct: float | None = 1.0


def _wrong(name: str, deploy: str, what: str, **kw: Any) -> Scenario:
    """Wrong or missing limits, other charge rules: ≥ 0.9 overall, ≥ 0.95 after the first window."""
    return Scenario(name, "wrong", deploy, what, target=0.9, target_after_first=0.95, max_429_pct=2.0, **kw)


def _scenarios() -> list[Scenario]:
    out: list[Scenario] = []
    for d in ("10k", "60k", "450k"):
        nice = {"10k": "rpm-10k", "60k": "mixed-60k", "450k": "high-450k"}[d]
        out.append(Scenario(nice, "deployments", d, DEPLOYS[d].what))
        out.append(
            Scenario(
                f"peer-{nice}",
                "peer",
                d,
                "naive openai SDK client, same deployment",
                client="peer",
                target=None,
                max_429_pct=None,
            )
        )
    out += [
        _wrong("tpm-2x", "60k", "job claims 2x the real TPM (and so RPM)", limits="2x"),
        _wrong("no-limits", "60k", "job sets no tpm/rpm: learned from x-ratelimit-* headers", limits="none"),
        _wrong("no-limits-10k", "10k", "job sets no tpm/rpm on the RPM-bound deployment", limits="none"),
        _wrong(
            "no-limit-headers",
            "60k",
            "no tpm/rpm, and the emulator sends only x-ratelimit-remaining-* (no limit-* headers)",
            limits="none",
            limit_headers=False,
        ),
        _wrong("charge-max-only", "60k", "emulator charges max_tokens only", charge_rule="max-only"),
        _wrong(
            "charge-text-only",
            "60k",
            "emulator charges prompt text + max_tokens, images free",
            charge_rule="prompt-text+max",
        ),
        _wrong(
            "charge-chars",
            "60k",
            "emulator charges body chars/4 + max_tokens (base64 images inflate it: up to 20k a request)",
            charge_rule="chars+max",
        ),
        _wrong(
            "charge-chars-450k",
            "450k",
            "the same on the 450k deployment (a request is at most 4 % of the window)",
            charge_rule="chars+max",
        ),
        Scenario("fixed-60k", "fixed", "60k", "fixed (resetting) windows, mixed detail", window_mode="fixed"),
        Scenario("fixed-rpm-10k", "fixed", "10k", "fixed (resetting) windows, RPM binds", window_mode="fixed"),
        Scenario(
            "latency-auto",
            "latency",
            "450k",
            "answers of 300 tokens: ~6.3 s mean latency; default (auto) concurrency",
            answer_tokens=300,
        ),
        Scenario(
            "latency-fixed-8",
            "latency",
            "450k",
            "the same with concurrency = 8 (contrast: starves)",
            answer_tokens=300,
            concurrency=8,
            target=None,
            max_429_pct=None,
        ),
        Scenario(
            "peer-latency",
            "latency",
            "450k",
            "the naive peer at the same ~6.3 s latency",
            client="peer",
            answer_tokens=300,
            target=None,
            max_429_pct=None,
        ),
    ]
    return out


SCENARIOS = {s.name: s for s in _scenarios()}
GROUPS = sorted({s.group for s in SCENARIOS.values()})


# ---- one scenario, in its own process ---------------------------------------------------------------


def _emulator_config(sc: Scenario, path: Path) -> Path:
    d = DEPLOYS[sc.deploy]
    path.write_text(
        f'latency = "{sc.latency}"\n'
        f'charge_rule = "{sc.charge_rule}"\n'
        f'window_mode = "{sc.window_mode}"\n'
        f"answer_tokens = {sc.answer_tokens}\n"
        f"send_limit_headers = {'true' if sc.limit_headers else 'false'}\n"
        "log_limit = 0\n"
        f'[[deployments]]\nname = "{DEPLOYMENT}"\nmodel = "gpt-4o"\ntpm = {d.tpm}\n'
    )
    return path


def _limits_toml(sc: Scenario) -> str:
    tpm = DEPLOYS[sc.deploy].tpm
    lines = []
    if sc.limits == "exact":
        lines.append(f"tpm = {tpm}")
    elif sc.limits == "2x":
        lines.append(f"tpm = {2 * tpm}")
    if sc.concurrency:
        lines.append(f"concurrency = {sc.concurrency}")
    return "\n".join(lines)


def _reset(url: str) -> None:
    req = urllib.request.Request(url + "/_emulator/reset", method="POST", data=b"")
    urllib.request.urlopen(req, timeout=5).read()


async def _run_ours(sc: Scenario, url: str, tmp: Path, manifest: Path, seconds: float) -> dict[str, Any]:
    from batch.core.errors import RunStopped
    from batch.core.spec import load_spec
    from batch.run.runner import Runner
    from batch.send import LiveStats

    d = DEPLOYS[sc.deploy]
    job = job_file(
        tmp / "job.toml",
        manifest,
        url,
        tmp / "out.parquet",
        deployment=DEPLOYMENT,
        model="gpt-4o",
        max_tokens=d.max_tokens,
        limits=_limits_toml(sc),
    )
    runner = Runner(load_spec(job), show_progress=False)
    # Instrumentation only: record what the window sizing asks for, once a second (the runner's sizer).
    sizes: list[tuple[float, int, int, float]] = []
    target = runner._window_target
    t0 = time.monotonic()

    def live() -> LiveStats:  # the (only) deployment's latency and load, as the sizer reads them
        sender = runner.pool.members[0].sender
        assert sender is not None
        return sender.live

    def recorded() -> int:
        size = target()
        sizes.append((round(time.monotonic() - t0, 1), runner._on_wire(), size, round(live().latency_s, 2)))
        return size

    runner._window_target = recorded  # type: ignore[method-assign]
    _reset(url)
    task = asyncio.ensure_future(runner.run())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        runner._halt("benchmark time is up")
    try:
        await task
    except RunStopped:
        pass
    lim = runner.limiter
    steady = [s for s in sizes if s[0] >= 60.0] or sizes
    return {
        "ok": runner.tally.ok,
        "errors": runner.tally.error,
        "error_codes": dict(runner.tally.error_codes),
        "throttled_seen": runner.tally.throttled,
        "learned_tpm": lim.tpm,
        "learned_rpm": None if lim.request_capacity is None else round(lim.request_capacity * 60 / lim.request_window),
        "scale": round(lim.scale, 3),
        "charge_measure": "chars" if lim._charge.by_chars else "tokens",
        "charge_switches": lim._charge.switches,
        "charge_spread": [round(x, 5) for x in lim._charge._spread],
        "skew": round(lim.skew, 3),
        "request_skew": round(lim.request_skew, 3),
        "window_median": statistics.median(s[2] for s in steady) if steady else None,
        "active_median": statistics.median(s[1] for s in steady) if steady else None,
        "latency_learned_s": live().latency_s,
        "sizes": sizes,
    }


async def _run_peer(sc: Scenario, url: str, manifest: Path, seconds: float, concurrency: int) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from bench.peer import run_peer

    t = pq.read_table(manifest, columns=["image", "detail"]).to_pydict()
    rows = list(zip(t["image"], t["detail"], strict=True))
    _reset(url)
    res = await run_peer(
        url=url,
        api_key=BENCH_KEY,
        deployment=DEPLOYMENT,
        rows=rows,
        prompt=PROMPT,
        max_tokens=DEPLOYS[sc.deploy].max_tokens,
        concurrency=concurrency,
        seconds=seconds,
    )
    return {**asdict(res), "concurrency": concurrency}


def measure(st: dict[str, Any], minutes: int, fixed: bool) -> dict[str, Any]:
    """Per-minute ratios from the emulator's per-second timeline ``[t, admitted, tokens, throttled]``."""
    tl: list[list[int]] = st["timeline"]
    tpm = st["tpm"]
    rpm_cap = st["request_capacity"] * 60.0 / st["request_window_s"]
    shift = 0
    if fixed and st.get("timeline_origin_at") and st.get("started_at"):
        # Minutes are the emulator's own fixed windows, which start at its (reset) clock's origin.
        shift = round((st["timeline_origin_at"] - st["started_at"]) % 60.0)
    buckets: dict[int, list[int]] = {}
    for t, admitted, tokens, throttled in tl:
        b = buckets.setdefault((t + shift) // 60, [0, 0, 0])
        b[0] += admitted
        b[1] += tokens
        b[2] += throttled
    # Seconds the books cover: up to when they were read, not just to the last event in the timeline.
    covered = len(tl)
    if st.get("timeline_origin_at") and st.get("read_at"):
        covered = max(covered, int(st["read_at"] - st["timeline_origin_at"]))
    full = min(minutes, (covered + shift) // 60)
    rows = [buckets.get(m, [0, 0, 0]) for m in range(full)]
    tok = [r[1] / tpm for r in rows]
    req = [r[0] / rpm_cap for r in rows]
    binding = "tokens" if sum(tok) >= sum(req) else "requests"
    fig = tok if binding == "tokens" else req
    admitted = sum(r[0] for r in rows)
    throttled = sum(r[2] for r in rows)
    tl_throttled = sum(r[3] for r in tl)
    return {
        "minutes": full,
        "binding": binding,
        "per_minute": [round(x, 4) for x in fig],
        "tok_per_minute": [round(x, 4) for x in tok],
        "req_per_minute": [round(x, 4) for x in req],
        "mean": statistics.fmean(fig) if fig else 0.0,
        "mean_after_first": statistics.fmean(fig[1:]) if len(fig) > 1 else None,
        "min": min(fig) if fig else 0.0,
        "admitted": admitted,
        "throttled": throttled,
        "pct_429": 100.0 * throttled / max(1, admitted + throttled),
        "throttled_tokens_total": st["throttled_tokens"],
        "throttled_requests_total": st["throttled_requests"],
        "throttled_total": tl_throttled,
        "received_total": st["received"],
        "emulator_errors": st["errors"],
        "seconds_with_429": [t for t, _a, _k, thr in tl if thr][:60],
    }


def run_one(name: str, minutes: int, peer_concurrency: int, out: Path, save: Path | None) -> None:
    sc = SCENARIOS[name]
    d = DEPLOYS[sc.deploy]
    os.environ["BENCH_API_KEY"] = BENCH_KEY
    seconds = minutes * 60.0 + 3.0
    rpm = d.tpm * 6 // 1000
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        conf = _emulator_config(sc, tmp / "emulator.toml")
        with emulator_process("--config", str(conf)) as url:
            manifest = sample_manifest(tmp / "m.parquet", max(400, 2 * rpm * (minutes + 2)), list(d.details))
            cpu0 = time.process_time()
            if sc.client == "peer":
                client = asyncio.run(_run_peer(sc, url, manifest, seconds, sc.concurrency or peer_concurrency))
            else:
                client = asyncio.run(_run_ours(sc, url, tmp, manifest, seconds))
            client["cpu_s"] = time.process_time() - cpu0
            read_at = time.time()
            full = stats(url)
    st = full["deployments"][DEPLOYMENT]
    st["started_at"] = full["started_at"]
    st["read_at"] = read_at
    result = {
        "scenario": asdict(sc),
        "client": client,
        "figures": measure(st, minutes, sc.window_mode == "fixed"),
        "emulator_cpu_s": full["cpu"]["process_s"],
    }
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        (save / f"{name}.stats.json").write_text(json.dumps(full))
    out.write_text(json.dumps(result))


# ---- the suite ---------------------------------------------------------------------------------------


def _fmt_ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def verdict(r: dict[str, Any]) -> str:
    sc, f = r["scenario"], r["figures"]
    checks = []
    if sc["target"] is not None:
        checks.append(f["mean"] >= sc["target"])
    if sc["target_after_first"] is not None and f["mean_after_first"] is not None:
        checks.append(f["mean_after_first"] >= sc["target_after_first"])
    if sc["max_429_pct"] is not None:
        checks.append(f["pct_429"] <= sc["max_429_pct"])
    if not checks:
        return "(reference)"
    return "met" if all(checks) else "MISSED"


def target_text(sc: dict[str, Any]) -> str:
    parts = []
    if sc["target"] is not None:
        parts.append(f"≥ {sc['target']:.2f}")
    if sc["target_after_first"] is not None:
        parts.append(f"≥ {sc['target_after_first']:.2f} after 1st")
    if sc["max_429_pct"] is not None:
        parts.append(f"≤ {sc['max_429_pct']:g} % 429")
    return ", ".join(parts) or "—"


def print_table(results: list[dict[str, Any]], minutes: int) -> None:
    print()
    print(f"Utilisation suite: {minutes} measured minute(s) per scenario; figures from the emulator's books")
    head = ["scenario", "client", "binds", "per full minute", "mean", "after 1st", "429 %", "target", "verdict"]
    rows = []
    for r in results:
        sc, f = r["scenario"], r["figures"]
        client = sc["client"]
        if client == "peer":
            client = f"peer (sem {r['client']['concurrency']})"
        elif sc["concurrency"]:
            client = f"ours (conc {sc['concurrency']})"
        rows.append(
            [
                sc["name"],
                client,
                "RPM" if f["binding"] == "requests" else "TPM",
                " ".join(f"{x:.3f}" for x in f["per_minute"]),
                _fmt_ratio(f["mean"]),
                _fmt_ratio(f["mean_after_first"]),
                f"{f['pct_429']:.2f} ({f['throttled']}/{f['admitted'] + f['throttled']})",
                target_text(sc),
                verdict(r),
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    print()
    by_name = {r["scenario"]["name"]: r for r in results}
    for r in results:
        sc, c, f = r["scenario"], r["client"], r["figures"]
        print(f"{sc['name']}: {sc['what']}")
        other = "requests ÷ RPM" if f["binding"] == "tokens" else "tokens ÷ TPM"
        other_vals = f["req_per_minute"] if f["binding"] == "tokens" else f["tok_per_minute"]
        print(f"    {other} per minute: " + " ".join(f"{x:.3f}" for x in other_vals))
        if sc["client"] == "peer":
            print(
                f"    peer rows: ok {c['ok']}, failed after SDK retries on 429 {c['failed_429']}, other errors "
                f"{c['failed_other']} {c['errors'] or ''}; client CPU {c['cpu_s']:.1f} s"
            )
            mine = by_name.get(sc["name"].removeprefix("peer-")) or by_name.get("latency-auto")
            if mine is not None and mine is not r and mine["scenario"]["deploy"] == sc["deploy"]:
                mf, mc = mine["figures"], mine["client"]
                print(
                    f"    ours ({mine['scenario']['name']}) vs peer: {mf['mean']:.3f} vs {f['mean']:.3f} of the limit "
                    f"({mf['mean'] - f['mean']:+.3f}), 429s {mf['pct_429']:.2f} % vs {f['pct_429']:.2f} %, "
                    f"rows given up {mc['errors']} vs {c['failed_429'] + c['failed_other']}"
                )
        else:
            print(
                f"    rows ok {c['ok']}, errors {c['errors']} {c['error_codes'] or ''}; "
                f"learned tpm {c['learned_tpm']}, rpm {c['learned_rpm']}, scale {c['scale']}, "
                f"skew {c['skew']} / {c['request_skew']} s; window median {c['window_median']}"
                f" (active {c['active_median']}), latency seen {c['latency_learned_s']:.2f} s; "
                f"client CPU {c['cpu_s']:.1f} s"
            )
        seconds = f["seconds_with_429"]
        if seconds:
            print(f"    seconds with 429s (from first admission): {', '.join(map(str, seconds[:30]))}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", action="append", default=[], metavar="NAME", help="run this scenario (repeatable)")
    ap.add_argument("--group", action="append", default=[], choices=GROUPS, help="run this group (repeatable)")
    ap.add_argument("--minutes", type=int, default=3, help="measured full minutes per scenario (default 3)")
    ap.add_argument("--quick", action="store_true", help="smoke mode: 1 minute per scenario")
    ap.add_argument("--jobs", type=int, default=6, help="scenarios run at once (default 6; most are idle waiting)")
    ap.add_argument("--peer-concurrency", type=int, default=32, help="the peer's semaphore (default 32)")
    ap.add_argument("--save", type=Path, metavar="DIR", help="keep each scenario's stats, result and log here")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write all results as JSON")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--one", metavar="NAME", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    minutes = 1 if args.quick else args.minutes
    if args.one:
        run_one(args.one, minutes, args.peer_concurrency, args.out, args.save)
        return
    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.name:18} {s.group:12} {s.what}")
        return
    unknown = [n for n in args.scenario if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; --list shows them")
    names = [n for n in SCENARIOS if n in args.scenario or SCENARIOS[n].group in args.group]
    if not args.scenario and not args.group:
        names = list(SCENARIOS)
    results = run_suite(names, minutes, args.jobs, args.peer_concurrency, args.save)
    print_table(results, minutes)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def run_suite(
    names: list[str], minutes: int, jobs: int, peer_concurrency: int, save: Path | None
) -> list[dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        queue = list(names)
        running: dict[str, tuple[subprocess.Popen[bytes], Path, Path]] = {}
        started = time.monotonic()
        while queue or running:
            while queue and len(running) < max(1, jobs):
                name = queue.pop(0)
                out, log = tmp / f"{name}.json", (save or tmp) / f"{name}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, __file__, "--one", name, "--minutes", str(minutes), "--out", str(out)]
                cmd += ["--peer-concurrency", str(peer_concurrency)]
                if save is not None:
                    cmd += ["--save", str(save)]
                with log.open("wb") as fh:
                    running[name] = (subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT), out, log)
                print(f"[{time.monotonic() - started:6.0f} s] started {name}", flush=True)
            time.sleep(1.0)
            for name, (proc, out, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                if proc.returncode == 0 and out.exists():
                    results[name] = json.loads(out.read_text())
                    f = results[name]["figures"]
                    print(
                        f"[{time.monotonic() - started:6.0f} s] {name}: {f['mean']:.3f} of the {f['binding']} limit, "
                        f"{f['pct_429']:.2f} % 429s",
                        flush=True,
                    )
                else:
                    print(f"[{time.monotonic() - started:6.0f} s] {name} FAILED (exit {proc.returncode}):", flush=True)
                    print(log.read_text()[-3000:], flush=True)
    return [results[n] for n in names if n in results]


if __name__ == "__main__":
    main()
