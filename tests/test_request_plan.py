"""One request plan: the estimate and the run plan every row the same way.

A varied manifest (every local image format, a one-page and a multi-page TIFF, a PDF, page
selections, http(s) and data: URLs, bad rows) is estimated (``estimate_job``, and the scan row by
row) and really run on the emulator; each row's requests (which pages go together) and image
tokens must be exactly equal between the estimate's plan, the run's result file and what the
emulator received.
"""

from __future__ import annotations

import base64
import functools
import io
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw

from batch.cli import main
from batch.core import ImageError, load_prices, load_spec
from batch.emulator import EmbeddedEmulator
from batch.estimate.job import estimate_job
from batch.estimate.scan import PricedModel, Scan, Sums
from batch.inputs import Manifest, load_image, probe_file
from batch.plan import REMOTE_IMAGE_SIZE, Refusal, RequestPlan

BAD_ROWS = {"missing": "image_not_found", "corrupt": "image_corrupt", "bad-detail": "bad_detail"}


def picture(size: tuple[int, int], seed: int) -> Image.Image:
    im = Image.new("RGB", size, (seed * 40 % 256, 90, 200 - seed * 20 % 200))
    ImageDraw.Draw(im).rectangle([5, 5, size[0] // 2, size[1] // 3], fill=(255, 255, 255))
    return im


def write_inputs(root: Path, www: Path) -> None:
    picture((640, 480), 1).save(root / "photo.png")
    picture((1800, 1200), 2).save(root / "photo.jpg", quality=85)
    picture((1200, 900), 3).save(root / "photo.webp")
    picture((300, 200), 4).convert("P").save(root / "anim.gif")
    picture((500, 400), 5).save(root / "scan.bmp")  # not sendable: re-encoded as PNG
    picture((700, 500), 6).save(root / "one.tiff")  # one page: an image
    pages = [picture((850, 1100), 7 + i) for i in range(3)]
    pages[0].copy().save(root / "doc.pdf", save_all=True, append_images=[p.copy() for p in pages[1:]], resolution=100)
    pages[0].copy().save(root / "doc.tiff", save_all=True, append_images=[p.copy() for p in pages[1:]])
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a PNG at all")
    picture((1024, 1024), 9).save(www / "remote.png")  # the size the plan assumes for a remote image


def data_url(size: tuple[int, int]) -> str:
    buf = io.BytesIO()
    picture(size, 10).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def rows(web: str) -> list[dict[str, Any]]:
    return [
        {"id": "png", "image": "photo.png"},
        {"id": "jpeg", "image": "photo.jpg", "detail": "low"},
        {"id": "webp", "image": "photo.webp"},
        {"id": "gif", "image": "anim.gif"},
        {"id": "bmp", "image": "scan.bmp"},
        {"id": "one-page-tiff", "image": "one.tiff"},
        {"id": "pdf", "image": "doc.pdf"},
        {"id": "pdf-1-2", "image": "doc.pdf", "pages": "1-2"},
        {"id": "tiff", "image": "doc.tiff"},
        {"id": "tiff-2", "image": "doc.tiff", "pages": "2"},
        {"id": "http", "image": f"{web}/remote.png"},
        {"id": "https", "image": "https://127.0.0.1:1/never-fetched.png"},
        {"id": "data", "image": data_url((333, 222))},
        {"id": "missing", "image": "nowhere.png"},
        {"id": "corrupt", "image": "broken.png"},
        {"id": "bad-detail", "image": "photo.png", "detail": "ultra"},
    ]


def write_job(root: Path, url: str, packing: str, manifest: list[dict[str, Any]]) -> Path:
    cols = ("id", "image", "detail", "pages")
    table = {k: pa.array([r.get(k) for r in manifest], pa.string()) for k in cols}
    pq.write_table(pa.table(table), root / "manifest.parquet")
    path = root / "job.toml"
    path.write_text(
        f"""
[input]
manifest = "{root / "manifest.parquet"}"
[prompt]
system = "You read documents."
user = "Describe the image."
detail = "high"
max_tokens = 30
[documents]
dpi = 100
{packing}
[endpoint]
deployment = "gpt-4o"
url = "{url}"
api_key_env = "TEST_API_KEY"
[limits]
max_attempts = 1
[output]
path = "{root / "out.parquet"}"
"""
    )
    return path


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """``tmp_path/www`` over loopback http: the emulator downloads http images as the service does."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(_Quiet, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


def estimated_rows(job: Path) -> dict[str, tuple[RequestPlan | Refusal, Sums]]:
    """Each row as the estimate's scan plans and sums it (the sums' growth for that row)."""
    spec = load_spec(job)
    table = load_prices()
    main_target = PricedModel.resolve(spec.endpoint.model, table)
    scan = Scan(spec, main_target, [main_target], None, REMOTE_IMAGE_SIZE)
    out: dict[str, tuple[RequestPlan | Refusal, Sums]] = {}
    for item in Manifest(spec.input.manifest, spec.input.columns).items():
        before = _total(scan)
        scan.add(item)
        after = _total(scan)
        grew = Sums(
            after.rows - before.rows,
            after.requests - before.requests,
            after.images - before.images,
            after.image_tokens - before.image_tokens,
            after.text_tokens - before.text_tokens,
            after.max_completion - before.max_completion,
        )
        out[item.id] = (scan.planner.plan(item), grew)
    return out


def _total(scan: Scan) -> Sums:
    total = Sums()
    for sums in scan.by_detail.values():
        total.add(sums)
    return total


def run_requests(emulator: EmbeddedEmulator) -> dict[str, dict[str, Any]]:
    return {r["request_id"]: r for r in emulator.requests() if r["route"] == "azure" and r.get("request_id")}


@pytest.mark.parametrize("packing", ['requests = "per-page"', 'requests = "packed"\npages_per_request = 2'])
def test_the_estimate_and_the_run_plan_every_row_alike(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], web: str, packing: str
) -> None:
    write_inputs(tmp_path, tmp_path / "www")
    job = write_job(tmp_path, emulator.url, packing, rows(web))
    planned = estimated_rows(job)
    report = estimate_job(load_spec(job))

    assert main(["run", str(job), "--no-progress"]) == 0
    result = {r["id"]: r for r in pq.read_table(tmp_path / "out.parquet").to_pylist()}
    received = run_requests(emulator)

    # Refused rows: the same code from the estimate's plan and the run, and nothing sent for them.
    for row_id, code in BAD_ROWS.items():
        plan, grew = planned[row_id]
        assert isinstance(plan, Refusal) and plan.code == code, (row_id, plan)
        assert grew == Sums()
        assert (result[row_id]["error_code"], result[row_id]["attempts"]) == (code, 0)
    assert report.skipped == {code: 1 for code in BAD_ROWS.values()}

    sent = [row_id for row_id in planned if row_id not in BAD_ROWS]
    for row_id in sent:
        plan, grew = planned[row_id]
        row = result[row_id]
        assert isinstance(plan, RequestPlan), (row_id, plan)
        # The scan sums exactly the plan ...
        assert (grew.requests, grew.images, grew.image_tokens) == (len(plan.requests), plan.images, plan.image_tokens)
        # ... and the run's own estimate of the row is the same, to the token.
        assert row["estimated_image_tokens"] == plan.image_tokens, row_id
        assert row["estimated_prompt_tokens"] == plan.image_tokens + plan.text_tokens, row_id
        if row_id == "https":  # the emulator cannot fetch it: the run tried with the plan's one request
            assert row["status"] == "error" and row["attempts"] >= 1
            assert plan.requests[0].images[0].size == REMOTE_IMAGE_SIZE
            continue
        assert row["status"] == "ok", row
        # What the emulator received, request by request: the planned pages, sizes and image tokens.
        if plan.is_document:
            ids = [p["request_id"] for p in row["page_answers"]]
            assert [p["pages"] for p in row["page_answers"]] == [list(r.pages) for r in plan.requests]
            assert row["pages_processed"] == [n for r in plan.requests for n in r.pages]
        else:
            ids = [row["request_id"]]
        assert len(ids) == len(plan.requests)
        for request_id, request in zip(ids, plan.requests, strict=True):
            got = received[request_id]
            assert [(im["width"], im["height"]) for im in got["images"]] == [im.size for im in request.images]
            assert got["image_tokens"] == request.estimate.image_tokens, (row_id, request)
            assert got["prompt_tokens"] == request.estimate.prompt_tokens, (row_id, request)

    # The estimate's totals are the sum of the same plans.
    plans = [p for p, _ in planned.values() if isinstance(p, RequestPlan)]
    assert report.total.requests == sum(len(p.requests) for p in plans)
    assert report.total.image_tokens == sum(p.image_tokens for p in plans)
    assert report.total.image_tokens == sum(result[i]["estimated_image_tokens"] for i in sent)
    assert report.total.text_tokens == sum(p.text_tokens for p in plans)
    pdf = planned["pdf"][0]
    assert isinstance(pdf, RequestPlan)
    expected = [[1], [2], [3]] if "per-page" in packing else [[1, 2], [3]]
    assert [list(r.pages) for r in pdf.requests] == expected


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("JPEG", {"exif": b"Exif\x00\x00" + b"x" * 9000}),  # the frame header beyond the first bytes
        ("GIF", {}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
        ("BMP", {}),
        ("TIFF", {}),
    ],
)
def test_the_plans_one_look_at_a_file_gives_pillows_size(fmt: str, options: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / f"image.{fmt.lower()}"
    picture((321, 123), 1).save(path, fmt, **options)
    probe = probe_file(path)
    with Image.open(path) as im:
        assert (probe.kind, probe.size, probe.file_bytes) == ("image", im.size, path.stat().st_size)
    assert probe.data is None
    # The run's probe keeps the whole file for the load (one open): the same look, plus the bytes,
    # and the load from those bytes is the load from the file.
    kept = probe_file(path, keep=True)
    assert (kept.kind, kept.size, kept.file_bytes) == (probe.kind, probe.size, probe.file_bytes)
    assert kept.data == path.read_bytes()
    assert load_image(path, data=kept.data) == load_image(path)


def test_the_plans_look_never_reads_a_document_whole(tmp_path: Path) -> None:
    pages = [picture((200, 300), i) for i in range(2)]
    pages[0].copy().save(tmp_path / "doc.pdf", save_all=True, append_images=[pages[1].copy()])
    pages[0].copy().save(tmp_path / "doc.tiff", save_all=True, append_images=[pages[1].copy()])
    for name, kind in (("doc.pdf", "pdf"), ("doc.tiff", "tiff")):
        probe = probe_file(tmp_path / name, keep=True)
        assert (probe.kind, probe.data) == (kind, None)


def test_the_plans_one_look_refuses_a_damaged_header(tmp_path: Path) -> None:
    path = tmp_path / "bad-crc.png"
    picture((50, 40), 1).save(path)
    data = bytearray(path.read_bytes())
    data[17] ^= 0xFF  # the IHDR's width, under its CRC
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as err:
        probe_file(path)
    assert err.value.code == "image_corrupt"
