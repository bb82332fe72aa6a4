"""`batch report`: a real job through the real emulator, its real result Parquet, the page in Chromium.

Every figure of the report is recomputed here independently, with pyarrow and plain Python, from
the same Parquet file; the HTML page is loaded in headless Chromium and its charts measured.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel
from batch.ledger.schema import RESULT_SCHEMA
from batch.report.html import render_html
from batch.report.job import build_report
from batch.report.streamstats import ThinnedSample, TokenHistogram, TopN
from tests.support import API_KEY, Sample, make_image

CHROMIUM = Path("/usr/bin/chromium")
# gpt-4o 2024-08-06: $2.50 in, $10.00 out per 1M tokens; Batch $1.25 / $5.00 (batch/data/prices.toml)
RATES = {"standard": (2.5e-6, 10e-6), "batch": (1.25e-6, 5e-6)}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished run: small and big images, low/high/auto, answers cut short, two refused rows."""
    root = tmp_path_factory.mktemp("run")
    details: list[str | None] = ["low", "high", "auto", None] * 3
    s = Sample(root, 12, details=details, extra={"max_tokens": [None, None, 20] * 4})
    big = [
        ("img/big-a.png", (1024, 1024), "high"),
        ("img/big-b.png", (2048, 700), "auto"),
        ("img/big-c.png", (600, 3000), "low"),
    ]
    for k, (rel, size, _) in enumerate(big):
        make_image(root / rel, size, 100 + k)
    extra_rows = [*((f"big-{k}", rel, d, None) for k, (rel, _, d) in enumerate(big))]
    extra_rows += [("missing", "img/missing.png", "high", None), ("bad-detail", s.images[0], "ultra", None)]
    table = pq.read_table(s.manifest)
    more = pa.table(
        {
            "id": [r[0] for r in extra_rows],
            "image": [r[1] for r in extra_rows],
            "detail": [r[2] for r in extra_rows],
            "max_tokens": pa.array([r[3] for r in extra_rows], pa.int64()),
        }
    )
    pq.write_table(pa.concat_tables([table, more.cast(table.schema)]), s.manifest)
    config = EmulatorConfig(
        deployments=[Deployment("gpt-4o", "gpt-4o-2024-08-06", tpm=10_000_000)],
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel.zero(),
        seed=1,
    )
    with pytest.MonkeyPatch.context() as mp, EmbeddedEmulator(config) as emu:
        for var in ("AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "OPENAI_API_KEY"):
            mp.delenv(var, raising=False)
        mp.setenv("TEST_API_KEY", API_KEY)
        assert main(["run", str(s.job(emu.url, max_tokens=100)), "--no-progress"]) == 0
    yield root / "out/results.parquet"


def report_json(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["report", str(path), "--json", *args]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def cost_of(rows: list[dict[str, Any]], route: str) -> float:
    rate_in, rate_out = RATES[route]
    return sum((r["prompt_tokens"] or 0) * rate_in + (r["completion_tokens"] or 0) * rate_out for r in rows)


# --- the numbers ------------------------------------------------------------------------------


def test_json_numbers_equal_an_independent_computation(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = pq.read_table(run).to_pylist()
    billed = [r for r in rows if r["prompt_tokens"] is not None]
    data = report_json(run, capsys, "--top", "4")
    assert {r["model"] for r in billed} == {"gpt-4o-2024-08-06"}  # priced through the gpt-4o entry
    assert data["models"][0]["price"]["entry"] == "gpt-4o"

    assert data["rows"] == len(rows) == 17
    assert data["rows_without_usage"] == len(rows) - len(billed) == 2
    total = data["total"]
    assert total["prompt_tokens"] == sum(r["prompt_tokens"] for r in billed)
    assert total["completion_tokens"] == sum(r["completion_tokens"] for r in billed)
    assert total["total_tokens"] == sum(r["total_tokens"] for r in billed)
    assert total["cost_usd"]["standard"] == pytest.approx(cost_of(billed, "standard"), rel=1e-12)
    assert total["cost_usd"]["batch"] == pytest.approx(cost_of(billed, "batch"), rel=1e-12)

    for key, column in (("by_detail", "detail_used"), ("by_finish_reason", "finish_reason"), ("by_status", "status")):
        expected = {}
        for value in {r[column] for r in rows}:
            group = [r for r in rows if r[column] == value]
            expected[value or "(none)"] = (
                len(group),
                sum(r["prompt_tokens"] or 0 for r in group),
                cost_of(group, "standard"),
            )
        got = {x["key"]: (x["rows"], x["prompt_tokens"], x["cost_usd"]["standard"]) for x in data[key]}
        assert got.keys() == expected.keys()
        for k, (n, p, c) in expected.items():
            assert got[k][:2] == (n, p) and got[k][2] == pytest.approx(c, rel=1e-12), (key, k)
    assert {x["key"] for x in data["by_status"]} == {"ok", "error"}
    assert data["error_codes"] == {"image_not_found": 1, "bad_detail": 1}

    cut = [r for r in rows if r["finish_reason"] == "length"]
    answered = [r for r in rows if r["finish_reason"] is not None]
    assert len(cut) == 4  # every third small image asks for 20 tokens; answers are 60
    assert data["length"]["rows"] == len(cut)
    assert data["length"]["share"] == pytest.approx(len(cut) / len(answered))
    assert data["length"]["cost_usd"]["standard"] == pytest.approx(cost_of(cut, "standard"), rel=1e-12)

    pairs = [(r["estimated_prompt_tokens"], r["prompt_tokens"]) for r in billed]
    est = data["estimate"]
    assert est["rows"] == len(pairs)
    assert est["estimated_prompt_tokens"] == sum(e for e, _ in pairs)
    assert est["actual_prompt_tokens"] == sum(a for _, a in pairs)
    assert est["exact_rows"] == sum(e == a for e, a in pairs)
    assert est["mean_abs_pct_error"] == pytest.approx(sum(abs(e - a) / a * 100 for e, a in pairs) / len(pairs))
    # The emulator counts text with the real tokenizer and images by the published formulas:
    # the client's estimate is exact on every row.
    assert est["exact_rows"] == len(pairs) and est["error_pct"] == 0.0

    ranked = sorted(
        ((cost_of([r], "standard"), -i, r["id"]) for i, r in enumerate(rows) if r["prompt_tokens"] is not None),
        reverse=True,
    )
    assert [x["id"] for x in data["top"]] == [rid for _, _, rid in ranked[:4]]
    assert data["top"][0]["cost_usd"]["standard"] == pytest.approx(ranked[0][0])
    hist = data["histograms"]["prompt_tokens"]
    assert sum(b["rows"] for b in hist["bins"]) == len(billed)
    assert (hist["min"], hist["max"]) == (min(a for _, a in pairs), max(a for _, a in pairs))
    # Result files carry completed_at: the timeline holds every billed token, minute by minute.
    assert data["timeline"]["available"] is True
    assert sum(m["tokens"] for m in data["timeline"]["minutes"]) == sum(r["total_tokens"] for r in billed)


def test_terminal_output(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [r for r in pq.read_table(run).to_pylist() if r["prompt_tokens"] is not None]
    capsys.readouterr()
    assert main(["report", str(run), "--top", "3"]) == 0
    out = capsys.readouterr().out
    standard, batch = cost_of(rows, "standard"), cost_of(rows, "batch")
    assert f"billed    ${standard:,.4f}: 15 online row(s) at standard prices" in out  # an online run
    assert f"what-if   ${standard:,.4f} all at standard prices, ${batch:,.4f} all at Batch prices" in out
    assert "17: 15 billed, 2 without usage ($0)" in out
    for heading in ("By detail used:", "By finish reason:", "By status:", "Most expensive rows (top 3):"):
        assert heading in out
    assert "Cut short (finish_reason length): 4 of 15 answered rows (26.7%)" in out
    assert "exact rows 15 (100.0%)" in out
    assert "Error codes: bad_detail 1, image_not_found 1" in out
    assert "not available" not in out


# --- the page in a real browser ---------------------------------------------------------------

MEASURE = """<script>
const out = {charts: {}, keys: {}};
for (const svg of document.querySelectorAll("svg.chart")) {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll("rect.bar, circle.pt")].map((e) => {
    const b = e.getBoundingClientRect();
    return {tag: e.tagName, value: Number(e.dataset.value || 0), w: b.width, h: b.height};
  });
  out.charts[svg.dataset.chart] = {w: box.width, h: box.height, marks};
}
for (const e of document.querySelectorAll("[data-key]")) out.keys[e.dataset.key] = [e.dataset.value, e.textContent];
const pre = document.createElement("pre");
pre.id = "measure";
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'profile'}",
    ]
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=90, check=True, cwd=tmp
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (./dev installs it)")
def test_html_page_renders_in_headless_chromium(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "report.html"
    data = report_json(run, capsys, "--html", str(page), "--top", "5")
    text = page.read_text()
    # Self-contained: no URL to fetch, no script, and a policy forbidding any fetch anyway. (Price
    # sources are cited as text, "https://prices.azure.com/...": shown, never fetched.)
    assert not re.search(r"url\(|@import|=\s*[\"']?https?://", text) and "<script" not in text
    assert not re.search(r"\s(src|href)=", text)
    assert "default-src 'none'" in text

    # Measure the laid-out page: a copy with a probe script (the page itself has none).
    probe = tmp_path / "probe.html"
    probe.write_text(
        text.replace("default-src 'none'", "default-src 'none'; script-src 'unsafe-inline'").replace(
            "</body>", MEASURE + "</body>"
        )
    )
    dom = chromium(tmp_path, "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="measure">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    measured = json.loads(html.unescape(found.group(1)))
    charts = measured["charts"]
    expected = {"cost-by-detail", "hist-prompt", "hist-completion", "estimate-scatter", "estimate-by-detail"}
    assert expected | {"status", "finish-reason"} <= charts.keys()
    for name, chart in charts.items():
        assert chart["w"] > 100 and chart["h"] > 50, name
        drawn = [m for m in chart["marks"] if m["value"] > 0]
        assert drawn, name
        for m in drawn:  # every non-zero bar and every point has a real size on screen
            assert m["w"] > 0 and m["h"] > 0, (name, m)
    bars = [m for m in charts["cost-by-detail"]["marks"]]
    by_detail = {x["key"]: x["cost_usd"] for x in data["by_detail"]}
    assert sorted(m["value"] for m in bars) == pytest.approx(
        sorted([c[k] for c in by_detail.values() for k in ("billed", "standard", "batch")])
    )
    assert len(charts["estimate-scatter"]["marks"]) == data["estimate"]["sample_points"] == 15
    assert sum(m["value"] for m in charts["hist-prompt"]["marks"]) == data["rows_with_usage"]
    assert {m["value"] for m in charts["status"]["marks"]} == {15, 2}

    # The numbers on the page are the report's numbers.
    keys = measured["keys"]
    standard = data["total"]["cost_usd"]["standard"]
    assert float(keys["total.cost_usd.standard"][0]) == standard
    assert keys["total.cost_usd.standard"][1] == f"${standard:,.4f}"
    assert keys["total.cost_usd.batch"][1] == f"${data['total']['cost_usd']['batch']:,.4f}"
    assert keys["total.prompt_tokens"][1] == f"{data['total']['prompt_tokens']:,}"
    assert keys["rows"][1] == str(data["rows"])
    assert int(keys["estimate.exact_rows"][0]) == data["estimate"]["exact_rows"]
    assert keys["length.share"][1] == f"{data['length']['share'] * 100:.1f}%"
    for x in data["by_detail"]:
        assert float(keys[f"by_detail.{x['key']}.cost_usd.standard"][0]) == x["cost_usd"]["standard"]
    for i, x in enumerate(data["top"]):
        assert float(keys[f"top.{i}.cost_usd.standard"][0]) == x["cost_usd"]["standard"]

    shot = tmp_path / "page.png"
    chromium(
        tmp_path,
        "--window-size=1200,2600",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        f"--screenshot={shot}",
        page.as_uri(),
    )
    from PIL import Image

    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    standard_blue = (pixels == (0x2F, 0x6D, 0xB5)).all(axis=1).sum()
    assert standard_blue > 2000  # the standard-cost bars, the histogram and the billed columns are painted


def test_data_is_escaped(tmp_path: Path) -> None:
    path = write_results(tmp_path / "r.parquet", 3, ids=["<script>alert(1)</script>", 'a"b', "x&y"])
    page = render_html(build_report(path))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&quot;b" in page and "x&amp;y" in page


# --- files that are not ordinary results ------------------------------------------------------


def write_results(
    path: Path,
    n: int,
    *,
    model: str = "gpt-4o-2024-08-06",
    ids: list[str] | None = None,
    answer: str = "an answer",
    extra: dict[str, pa.Array] | None = None,
    row_group_size: int | None = None,
) -> Path:
    """A result file with the run's schema: varied tokens, every 7th row cut short, every 11th failed."""
    i = np.arange(n, dtype=np.int64)
    failed = i % 11 == 10
    prompt = 100 + (i * 37) % 1400
    estimate = prompt + np.where(i % 5 == 0, (i % 3) - 1, 0)  # some rows off by one token either way
    completion = 20 + (i * 13) % 100
    valid = pa.array(~failed)

    def masked(values: Any, kind: pa.DataType) -> pa.Array:
        return pc.if_else(valid, pa.array(values, kind), pa.scalar(None, kind))

    finish = pc.if_else(valid, pa.array(np.where(i % 7 == 0, "length", "stop")), pa.scalar(None, pa.string()))
    cols: dict[str, pa.Array] = {
        "id": pa.array(ids if ids is not None else [f"r{k:07d}" for k in range(n)]),
        "answer": pc.take(pa.array([answer]), pa.array(np.zeros(n, dtype=np.int32))),
        "finish_reason": finish,
        "prompt_tokens": masked(prompt, pa.int64()),
        "completion_tokens": masked(completion, pa.int64()),
        "total_tokens": masked(prompt + completion, pa.int64()),
        "status": pa.array(np.where(failed, "error", "ok")),
        "error_code": pc.if_else(valid, pa.scalar(None, pa.string()), pa.scalar("500")),
        "error_message": pa.nulls(n, pa.string()),
        "attempts": pa.array(np.ones(n, dtype=np.int32)),
        "latency_ms": pa.array(np.full(n, 12.5)),
        "request_id": pa.nulls(n, pa.string()),
        "model": masked(np.full(n, model), pa.string()),
        "detail_used": pa.array(np.array(["low", "high", "auto"])[i % 3]),
        "estimated_image_tokens": pa.array(prompt - 20),
        "estimated_prompt_tokens": pa.array(estimate),
        "image_note": pa.nulls(n, pa.string()),
        "completed_at": pa.nulls(n, pa.timestamp("ms", tz="UTC")),
        **(extra or {}),
    }
    for name in RESULT_SCHEMA.names:  # columns reports do not read (pages, OCR) stay null
        cols.setdefault(name, pa.nulls(n, RESULT_SCHEMA.field(name).type))
    more = [(k, v.type) for k, v in (extra or {}).items() if k not in RESULT_SCHEMA.names]
    schema = pa.schema([("id", pa.string()), *RESULT_SCHEMA, *more])
    pq.write_table(pa.table(cols, schema=schema), path, row_group_size=row_group_size)
    return path


def test_unknown_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_results(tmp_path / "r.parquet", 30, model="gpt-9-vision")
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no price for model 'gpt-9-vision'" in err and "--prices FILE" in err
    prices = tmp_path / "prices.toml"
    prices.write_text('[prices."gpt-9-vision"]\ninput = 1.0\noutput = 2.0\nsource = "test"\ndate = "2026-01-01"\n')
    data = report_json(path, capsys, "--prices", str(prices))
    t = pq.read_table(path)
    expected = (pc.sum(t["prompt_tokens"]).as_py() * 1.0 + pc.sum(t["completion_tokens"]).as_py() * 2.0) / 1e6
    assert data["total"]["cost_usd"]["standard"] == pytest.approx(expected)
    assert data["total"]["cost_usd"]["batch"] == pytest.approx(expected / 2)  # derived: half price


def test_empty_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_results(tmp_path / "empty.parquet", 0)
    page = tmp_path / "empty.html"
    data = report_json(path, capsys, "--html", str(page))
    assert data["rows"] == 0 and data["total"]["cost_usd"] == {"billed": 0.0, "standard": 0.0, "batch": 0.0}
    assert data["by_detail"] == [] and data["top"] == [] and data["estimate"]["error_pct"] is None
    assert data["histograms"]["prompt_tokens"]["bins"] == []
    text = page.read_text()
    assert "No rows." in text and "No billed rows." in text and 'class="bar' not in text
    assert main(["report", str(path)]) == 0
    assert "no row has both an estimate and billed usage" in capsys.readouterr().out


def test_not_a_result_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "zero.parquet").write_bytes(b"")
    assert main(["report", str(tmp_path / "zero.parquet")]) == 2
    assert "is not a Parquet file" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "absent.parquet")]) == 2
    assert "does not exist" in capsys.readouterr().err
    pq.write_table(pa.table({"id": ["a"], "prompt_tokens": [1]}), tmp_path / "manifest.parquet")
    assert main(["report", str(tmp_path / "manifest.parquet")]) == 2
    assert "missing column(s) completion_tokens" in capsys.readouterr().err
    results = write_results(tmp_path / "r.parquet", 5)
    assert main(["report", str(results), "--id-column", "key"]) == 2
    assert "has no column 'key' to name rows" in capsys.readouterr().err


# --- streamed, bounded memory -----------------------------------------------------------------


def test_large_file_streamed_in_batches_with_bounded_state(tmp_path: Path) -> None:
    n = 120_000
    path = write_results(tmp_path / "big.parquet", n, row_group_size=10_000)
    report = build_report(path, top=5, batch_rows=4096)
    t = pq.read_table(path)
    ok = t.filter(pc.is_valid(t["prompt_tokens"]))
    p, c = pc.sum(ok["prompt_tokens"]).as_py(), pc.sum(ok["completion_tokens"]).as_py()
    assert (report.total.prompt_tokens, report.total.completion_tokens) == (p, c)
    assert report.total.cost_standard == pytest.approx(p * 2.5e-6 + c * 10e-6, rel=1e-12)
    est, act = ok["estimated_prompt_tokens"].to_numpy(), ok["prompt_tokens"].to_numpy()
    assert report.accuracy.exact_rows == int((est == act).sum())
    assert report.accuracy.estimated == int(est.sum())
    pct = np.abs(est - act) * 100 / act
    central = ("-1% to 0%", "exact", "0% to +1%")
    assert report.accuracy.within_1pct_rows == int((pct <= 1).sum()) == sum(report.accuracy.buckets[k] for k in central)
    assert sum(report.accuracy.buckets.values()) == ok.num_rows
    # Bounded state: top tables hold N rows, the scatter sample at most 2,000, the histogram a few dozen bins.
    assert len(report.top) == 5 and len(report.accuracy.largest) == 5
    assert len(report.accuracy.sample) <= 2000 and report.accuracy.sample_stride > 1
    assert len(report.prompt_histogram.bins) <= 32
    assert sum(b[2] for b in report.prompt_histogram.bins) == ok.num_rows
    costs = ok["prompt_tokens"].to_numpy() * 2.5e-6 + ok["completion_tokens"].to_numpy() * 10e-6
    ids = ok["id"].to_pylist()
    order = sorted(range(len(ids)), key=lambda k: (-costs[k], k))[:5]
    assert [r.id for r in report.top] == [ids[k] for k in order]


def test_report_never_reads_the_answers(tmp_path: Path) -> None:
    """300,000 rows whose answers take 300 MB once read: the report's peak RSS grows far less than that.

    Measured against the same process on a 1,000-row file, so the imports' footprint (pyarrow,
    pandas, ...) which varies between installs, does not count.
    """
    # VmHWM, not getrusage: ru_maxrss survives exec, so it would report this (larger) process's peak.
    code = (
        "import re, sys\n"
        "from pathlib import Path\n"
        "from batch.report.job import build_report\n"
        "r = build_report(Path(sys.argv[1]))\n"
        "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text())\n"
        "print(r.rows, int(hwm.group(1)) // 1024)\n"
    )

    def peak(rows: int) -> int:
        path = write_results(tmp_path / f"wide{rows}.parquet", rows, answer="word " * 200)
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
        n, peak_mb = map(int, done.stdout.split())
        assert n == rows
        return peak_mb

    small, big = peak(1_000), peak(300_000)
    # The file is one 300,000-row row group, so the id and number columns are decoded whole
    # (~90 MB); reading the answers would add another 300 MB.
    assert big - small < 120, f"peak RSS {small} MB for 1,000 rows, {big} MB for 300,000"


# --- timeline, when the file has completion times ---------------------------------------------


def test_timeline_from_completion_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n = 90
    ms = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 2_000  # one row every 2 s: 3 minutes
    done = pa.array(ms, pa.timestamp("ms", tz="UTC"))
    path = write_results(tmp_path / "timed.parquet", n, extra={"completed_at": done})
    page = tmp_path / "timed.html"
    data = report_json(path, capsys, "--tpm", "30000", "--html", str(page))
    tl = data["timeline"]
    assert tl["available"] and tl["tpm"] == 30000
    t = pq.read_table(path)
    billed = t.filter(pc.is_valid(t["prompt_tokens"]))
    assert sum(m["tokens"] for m in tl["minutes"]) == pc.sum(billed["total_tokens"]).as_py()
    assert sum(m["rows"] for m in tl["minutes"]) == billed.num_rows
    minute0 = int(ms[0] // 60_000)
    assert [m["minute"] for m in tl["minutes"]] == sorted({int(x // 60_000) - minute0 for x in ms})
    text = page.read_text()
    assert 'data-chart="timeline"' in text and 'class="limit"' in text


# --- the bounded-memory pieces ----------------------------------------------------------------


def test_top_n_keeps_the_largest_and_earlier_rows_on_ties() -> None:
    top: TopN[int] = TopN(3)
    for start in (0, 4, 8):
        rows = np.arange(start, start + 4, dtype=np.int64)
        keys = np.array([1.0, 5.0, 5.0, 2.0]) if start else np.array([5.0, 0.0, 9.0, 5.0])

        def make(idx: npt.NDArray[np.int64], rows: npt.NDArray[np.int64] = rows) -> list[int]:
            return [int(rows[i]) for i in idx]

        top.offer(keys, rows, make)
    assert top.items() == [2, 0, 3]  # 9.0, then the earliest three 5.0s


def test_histogram_and_sample_are_bounded_and_exact() -> None:
    hist = TokenHistogram()
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.integers(0, 5000, 10_000), np.array([2_000_000])])
    hist.add(values)
    shown = hist.display(max_bars=32)
    assert sum(b[2] for b in shown.bins) == len(values) and len(shown.bins) <= 32
    assert (shown.min, shown.max) == (int(values.min()), 2_000_000)
    small = TokenHistogram()
    small.add(np.array([60, 60, 61, 75]))
    assert [b for b in small.display().bins if b[2]] == [(60, 60, 2), (61, 61, 1), (75, 75, 1)]
    sample: ThinnedSample[int] = ThinnedSample(100)
    for start in range(0, 10_000, 1000):
        rows = np.arange(start, start + 1000, dtype=np.int64)
        keep = rows[sample.wanted(rows)]
        sample.extend(keep.tolist(), keep.tolist())
    assert 50 <= len(sample.values()) <= 100 and max(sample.values()) > 9000
