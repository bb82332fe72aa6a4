"""`batch estimate`: a real Parquet manifest of real images, checked against the published formulas."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageFile

from batch import cli
from batch.cli import commands as cli_commands
from batch.core.catalogue import lookup_model
from batch.core.errors import SpecError, UnknownModelError
from batch.core.spec import load_spec
from batch.estimate.job import estimate_job
from batch.estimate.model import EstimateReport
from batch.estimate.render import render_estimate
from batch.inputs import data_url_size, webp_header_size
from batch.inputs.manifest import Manifest
from batch.plan import RequestBuilder
from batch.tokens.image import image_tokens
from batch.tokens.text import get_encoding

SYSTEM = "You caption images."
USER = "Describe the image."
ROW_PROMPT = "Read every number in this scanned statement, one per line."


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 200).save(buf, "PNG")
    return buf.getvalue()


class Case:
    """A manifest exercising every image source and every way a row can be refused."""

    def __init__(self, root: Path) -> None:
        img = root / "data" / "img"
        img.mkdir(parents=True)
        for name, size in {
            "a.png": (1024, 1024),
            "b.png": (1024, 1024),
            "c.png": (2048, 4096),
            "e.webp": (1800, 2400),
        }.items():
            Image.new("L", size, 120).save(img / name)
        Image.new("RGB", (512, 512), (9, 99, 199)).save(img / "d.jpg", "JPEG")
        (img / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
        Image.new("L", (64, 64)).save(root / "outside.png")
        data_url = "data:image/png;base64," + base64.b64encode(_png((300, 200))).decode()
        rows = [
            # id, image, detail, max_tokens, prompt
            ("a", "img/a.png", "high", None, None),
            ("b", "img/b.png", "low", None, None),
            ("c", "img/c.png", "high", 300, None),
            ("d", "img/d.jpg", "auto", None, None),
            ("e", "img/e.webp", None, None, ROW_PROMPT),  # the job's detail: auto
            ("http", "http://127.0.0.1:9/remote.png", "high", None, None),  # never fetched
            ("inline", data_url, "low", None, None),
            ("corrupt", "img/bad.png", "high", None, None),
            ("missing", "img/missing.png", "high", None, None),
            ("outside", "../outside.png", "high", None, None),
            ("medium", "img/a.png", "medium", None, None),
        ]
        self.manifest = root / "data" / "manifest.parquet"
        cols = list(zip(*rows, strict=True))
        pq.write_table(
            pa.table(
                {
                    "id": list(cols[0]),
                    "image": list(cols[1]),
                    "detail": list(cols[2]),
                    "max_tokens": pa.array(cols[3], pa.int64()),
                    "prompt": list(cols[4]),
                }
            ),
            self.manifest,
            row_group_size=4,  # several batches: the estimate streams
        )
        self.job = root / "job.toml"
        self.job.write_text(
            f"""
[input]
manifest = "data/manifest.parquet"
batch_rows = 3
[prompt]
system = "{SYSTEM}"
user = "{USER}"
detail = "auto"
max_tokens = 100
[endpoint]
deployment = "vision"
model = "gpt-4o"
[limits]
tpm = 10000
[output]
path = "out/result.parquet"
"""
        )


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return Case(tmp_path_factory.mktemp("estimate"))


@pytest.fixture(scope="module")
def report(case: Case) -> EstimateReport:
    return estimate_job(load_spec(case.job))


def _text_tokens(user: str) -> int:
    """OpenAI's chat framing by hand: 3 per message + role (1 token) + content, plus 3 to prime the reply."""
    enc = get_encoding("o200k_base")
    return (3 + 1 + len(enc.encode(SYSTEM))) + (3 + 1 + len(enc.encode(user))) + 3


def test_image_tokens_match_the_published_formula(report: EstimateReport) -> None:
    # tile rule, gpt-4o: low = 85; high = 85 + 170 x tiles of 512 after fit-in-2048 and shortest-side-768
    high_1024 = 85 + 170 * 4  # 1024x1024 -> 768x768 -> 4 tiles = 765 (published)
    high_2048x4096 = 85 + 170 * 6  # -> 1024x2048 -> 768x1536 -> 6 tiles = 1105 (published)
    auto_512 = 85 + 170 * 1  # never upscaled: 1 tile
    auto_1800x2400 = 85 + 170 * 4  # -> 1536x2048 -> 768x1024 -> 2x2 tiles
    assert (high_1024, high_2048x4096) == (765, 1105)
    by = report.by_detail
    assert list(by) == ["low", "high", "auto"]
    assert by["high"].image_tokens == high_1024 + high_2048x4096 + high_1024  # a, c, http (as 1024x1024)
    assert by["low"].image_tokens == 85 + 85  # b, inline
    assert by["auto"].image_tokens == auto_512 + auto_1800x2400  # d, e
    assert (by["high"].rows, by["low"].rows, by["auto"].rows) == (3, 2, 2)
    assert report.total.image_tokens == 2635 + 170 + 1020


def test_text_and_completion_tokens(report: EstimateReport) -> None:
    t = report.total
    assert t.text_tokens == 6 * _text_tokens(USER) + _text_tokens(ROW_PROMPT)
    assert _text_tokens(USER) == 19
    assert t.max_completion_tokens == 6 * 100 + 300
    assert t.expected_completion_tokens == math.ceil(900 * 0.6)
    assert t.rows == t.requests == t.images == 7


def test_costs_and_time(report: EstimateReport) -> None:
    t = report.total
    prompt = t.image_tokens + t.text_tokens
    assert t.costs.standard_max == pytest.approx((prompt * 2.50 + 900 * 10.00) / 1e6)
    assert t.costs.standard_expected == pytest.approx((prompt * 2.50 + 540 * 10.00) / 1e6)
    assert t.costs.batch_max == pytest.approx((prompt * 1.25 + 900 * 5.00) / 1e6)
    assert t.costs.batch_expected == pytest.approx(t.costs.standard_expected / 2)
    # 10,000 TPM -> 60 RPM (Azure: 6 per 1000 TPM); admission = prompt + max tokens
    assert (report.tpm, report.rpm) == (10_000, 60)
    assert t.admission_tokens == prompt + 900
    assert t.minutes == pytest.approx(max((prompt + 900) / 10_000, 7 / 60))
    assert t.bound_by == "tokens"
    totals = list(report.by_detail.values())
    assert sum(x.costs.standard_max for x in totals) == pytest.approx(t.costs.standard_max)


def test_sources_and_refused_rows(report: EstimateReport) -> None:
    assert report.rows_read == 11
    assert (report.images.local, report.images.inline, report.images.remote) == (5, 1, 1)
    assert report.skipped == {"bad_detail": 1, "image_corrupt": 1, "image_not_found": 1, "path_outside_base": 1}
    assert [s.id for s in report.skipped_examples] == ["corrupt", "missing", "outside", "medium"]
    assert any("1 http(s) image(s) not downloaded: estimated as 1024x1024" in n for n in report.notes)
    assert any("auto is estimated as high" in n for n in report.notes)


def test_matches_the_runs_own_per_request_estimates(case: Case, report: EstimateReport) -> None:
    spec = load_spec(case.job)
    builder = RequestBuilder(spec, lookup_model("gpt-4o"), None)
    prompt = 0
    for item in Manifest(spec.input.manifest, spec.input.columns).items():
        try:
            prompt += builder.build(item).estimate.prompt_tokens
        except Exception:
            continue
    assert prompt == report.total.prompt_tokens


def test_what_if_grid_in_one_pass(report: EstimateReport) -> None:
    grid = {(s.model, s.detail): s.totals for s in report.what_if}
    assert [m for m, d in grid if d == "job"] == ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"]
    assert grid["gpt-4o", "job"] == report.total
    assert grid["gpt-4o", "low"].image_tokens == 7 * 85
    assert grid["gpt-4o", "high"].image_tokens == 765 + 765 + 1105 + 255 + 765 + 765 + 255  # inline 300x200: 1 tile
    # gpt-4o-mini: base 2833, 5667 per tile; tiles a4 b(low) c6 d1 e4 http4 inline(low)
    assert grid["gpt-4o-mini", "job"].image_tokens == 7 * 2833 + (4 + 6 + 1 + 4 + 4) * 5667
    # gpt-4.1-mini: patches x 1.62, detail makes no difference; 1024x1024 = 1659, 1800x2400 = 2353 (published)
    mini = lookup_model("gpt-4.1-mini")
    assert image_tokens(mini, 1024, 1024, "high") == 1659 and image_tokens(mini, 1800, 2400, "high") == 2353
    sizes = [(1024, 1024), (1024, 1024), (2048, 4096), (512, 512), (1800, 2400), (1024, 1024), (300, 200)]
    assert grid["gpt-4.1-mini", "job"].image_tokens == sum(image_tokens(mini, w, h, "high") for w, h in sizes)
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"):
        low, high, auto, job = (grid[model, d].image_tokens for d in ("low", "high", "auto", "job"))
        assert low <= job <= high == auto
        assert grid[model, "job"].text_tokens == report.total.text_tokens  # all o200k_base
        assert grid[model, "job"].max_completion_tokens == 900
    assert grid["gpt-4.1", "job"].costs.standard_max < grid["gpt-4o", "job"].costs.standard_max


def test_overrides_and_comparisons(case: Case) -> None:
    spec = load_spec(case.job)
    low = estimate_job(spec, detail_override="low")
    assert list(low.by_detail) == ["low"] and low.total.rows == 8  # "medium" is overridden too
    assert low.total.image_tokens == 8 * 85
    old = estimate_job(spec, model_override="gpt-4o-2024-05-13", compare=["gpt-4o"])
    assert old.price.name == "gpt-4o-2024-05-13" and old.price.input == 5.00
    assert [s.model for s in old.what_if if s.detail == "job"] == ["gpt-4o-2024-05-13", "gpt-4o"]
    new = old.what_if[4].totals
    assert new.image_tokens == old.total.image_tokens
    assert old.total.costs.standard_max > new.costs.standard_max
    with pytest.raises(SpecError, match="detail 'medium'"):
        estimate_job(spec, detail_override="medium")
    with pytest.raises(SpecError, match="between 0 and 1"):
        estimate_job(spec, expected_output=1.5)


def test_model_without_price_stops_unless_priced(case: Case, tmp_path: Path) -> None:
    spec = load_spec(case.job)
    with pytest.raises(UnknownModelError, match="no price for model 'o1'"):
        estimate_job(spec, model_override="o1")
    prices = tmp_path / "prices.toml"
    prices.write_text('[prices."o1"]\ninput = 15.0\noutput = 60.0\nsource = "test"\ndate = "2026-01-01"\n')
    r = estimate_job(spec, model_override="o1", compare=[], prices=prices)
    assert r.total.image_tokens == 75 + 150 * 4 + 75 + 150 * 6 + 75 + 150 * 4 + 75 + 150 + 75 + 150 * 4 + 75 + 75
    assert [s.model for s in r.what_if] == ["o1"] * 4
    assert any("reasoning tokens" in n for n in r.notes)


def test_headers_only_no_decoding(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the estimate decoded pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    assert estimate_job(load_spec(case.job)).total.rows == 7


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("RGB", {"quality": 80}),  # VP8 (lossy)
        ("RGB", {"lossless": True}),  # VP8L
        ("RGBA", {"quality": 80}),  # VP8X (alpha)
        ("RGB", {"quality": 80, "exif": b"Exif\x00\x00" + b"\x00" * 8}),  # VP8X (metadata)
    ],
)
def test_webp_size_from_the_riff_header(tmp_path: Path, mode: str, options: dict[str, object]) -> None:
    path = tmp_path / "x.webp"
    Image.new(mode, (1537, 3001)).save(path, "WEBP", **options)
    with Image.open(path) as im:
        assert webp_header_size(path) == im.size == (1537, 3001)
    path.write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 14)  # no start code: left to Pillow
    assert webp_header_size(path) is None
    assert webp_header_size(tmp_path / "missing.webp") is None


def test_data_url_size_from_the_header_alone() -> None:
    noise = Image.effect_noise((900, 700), 80)  # incompressible: a payload far longer than the prefix read
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    assert len(b64) > 100_000
    # Only the first few KB are decoded: a damaged tail (invalid base64) is never reached.
    assert data_url_size("data:image/png;base64," + b64 + "@@@@") == (900, 700)
    exif = Image.Exif()
    exif[0x010E] = "x" * 20_000  # ImageDescription: the JPEG's size marker comes after 20 KB
    jpg = io.BytesIO()
    Image.new("RGB", (321, 123)).save(jpg, "JPEG", exif=exif)
    assert data_url_size("data:image/jpeg;base64," + base64.b64encode(jpg.getvalue()).decode()) == (321, 123)


def test_json_output_parses_and_matches(case: Case, report: EstimateReport, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["estimate", str(case.job), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == json.loads(json.dumps(report.to_dict()))
    assert data["total"]["image_tokens"] == 3825
    assert data["total"]["cost_usd"]["standard_max"] == report.total.costs.standard_max
    assert data["assumptions"]["expected_output_share"] == 0.6


def test_text_output(case: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("estimate must not run the job or start the emulator")

    monkeypatch.setattr(cli_commands, "run_job", no_run)
    monkeypatch.setattr(cli_commands, "_run_on_embedded_emulator", no_run)
    assert cli.main(["estimate", str(case.job), "--expected-output", "50%"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == render_estimate(estimate_job(load_spec(case.job), expected_output=0.5))
    assert "3,825" in out and "What if" in out and "image_corrupt 1" in out and "50% of each row" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--manifest", "{root}/job.toml"], "not a readable Parquet file"),
        (["--model", "o1"], "no price for model 'o1'"),
        (["--model", "llava-13b"], "unknown model 'llava-13b'"),
        (["--compare", "gpt-4o,nope"], "unknown model 'nope'"),
        (["--prices", "{root}/none.toml"], "cannot read price file"),
        (["--detail", "medium"], "invalid choice"),
        (["--expected-output", "1.5"], "between 0 and 1"),
    ],
)
def test_bad_input_exits_2(case: Case, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    root = case.job.parent
    argv = ["estimate", str(case.job), *(a.format(root=root) for a in args)]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_job_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["estimate", str(tmp_path / "nope.toml")]) == 2
    assert "job file not found" in capsys.readouterr().err


def test_sample_job_estimates() -> None:
    root = Path(__file__).resolve().parents[1]
    r = estimate_job(load_spec(root / "jobs" / "caption-sample.toml"))
    assert r.rows_read == r.total.rows > 0 and not r.skipped
