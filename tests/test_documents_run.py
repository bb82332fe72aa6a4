"""Documents and local OCR end to end: real PDFs and TIFFs made with Pillow, real Tesseract,
the real emulator over loopback, real Parquet out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw, ImageFont

from batch.cli import main
from batch.core.spec import load_spec
from batch.emulator import EmbeddedEmulator
from batch.estimate.job import estimate_job
from batch.ocr.engine import LocalOcr
from tests.support import API_KEY

needs_tesseract = pytest.mark.skipif(LocalOcr.available() is not None, reason=str(LocalOcr.available()))
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# One distinct amount per page, so a test can tell which page's text went where.
AMOUNTS = ["1,234,567.89", "-9,824,995.53", "40,001.07", "7,777.12"]


def page_image(n: int) -> Image.Image:
    im = Image.new("L", (900, 300), 255)
    d = ImageDraw.Draw(im)
    font = ImageFont.truetype(FONT, 30)
    d.text((40, 60), f"Statement page {n + 1}", font=font, fill=0)
    d.text((40, 150), f"Closing balance {AMOUNTS[n]}", font=font, fill=0)
    return im


def write_documents(root: Path) -> None:
    pages = [page_image(i).convert("RGB") for i in range(3)]
    pages[0].save(root / "doc.pdf", save_all=True, append_images=[p.copy() for p in pages[1:]], resolution=100)
    pages[0].copy().save(root / "doc.tiff", save_all=True, append_images=[p.copy() for p in pages[1:]])
    page_image(3).save(root / "single.png")


def manifest(root: Path, rows: list[dict[str, Any]]) -> Path:
    cols = {k: [r.get(k) for r in rows] for k in ("id", "image", "pages", "ocr")}
    path = root / "manifest.parquet"
    pq.write_table(pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()}), path)
    return path


def job(root: Path, url: str, *, ocr: str = "off", requests: str = "per-page", extra: str = "") -> Path:
    text = f"""
[input]
manifest = "{root / "manifest.parquet"}"
[prompt]
user = "Transcribe the amounts."
detail = "low"
max_tokens = 40
[documents]
dpi = 100
requests = "{requests}"
[ocr]
mode = "{ocr}"
{extra}
[endpoint]
deployment = "gpt-4o"
url = "{url}"
api_key_env = "TEST_API_KEY"
[output]
path = "{root / "out.parquet"}"
"""
    path = root / "job.toml"
    path.write_text(text)
    return path


def results(root: Path) -> list[dict[str, Any]]:
    return pq.read_table(root / "out.parquet").to_pylist()


def chats(emu: EmbeddedEmulator) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r["route"] == "azure" and r.get("status") == 200]


def test_pdf_and_tiff_pages_get_one_answer_each(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    write_documents(tmp_path)
    manifest(
        tmp_path,
        [
            {"id": "pdf", "image": "doc.pdf"},
            {"id": "tiff", "image": "doc.tiff", "pages": "1,3"},
            {"id": "png", "image": "single.png"},
        ],
    )
    assert main(["run", str(job(tmp_path, emulator.url)), "--no-progress"]) == 0
    pdf, tiff, png = results(tmp_path)
    assert pdf["status"] == tiff["status"] == png["status"] == "ok"
    assert pdf["pages_processed"] == [1, 2, 3] and tiff["pages_processed"] == [1, 3]
    assert [p["pages"] for p in pdf["page_answers"]] == [[1], [2], [3]]
    assert [p["pages"] for p in tiff["page_answers"]] == [[1], [3]]
    # One request per page, one image each; the row's tokens are the pages' sums, and exact.
    assert len(chats(emulator)) == 3 + 2 + 1
    assert all(len(r["images"]) == 1 for r in chats(emulator))
    for row in (pdf, tiff):
        assert row["prompt_tokens"] == sum(p["prompt_tokens"] for p in row["page_answers"])
        assert row["prompt_tokens"] == row["estimated_prompt_tokens"]
        assert row["answer"].startswith("--- page 1 ---\n")
        assert row["answer"].count("--- page ") == len(row["pages_processed"])
    # An image row with OCR off stays a plain row: no page columns.
    assert png["pages_processed"] is None and png["page_answers"] is None and png["ocr_text"] is None


def test_packed_pages_share_requests_up_to_the_limit(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    write_documents(tmp_path)
    manifest(tmp_path, [{"id": "pdf", "image": "doc.pdf"}])
    path = job(tmp_path, emulator.url, requests="packed")
    path.write_text(path.read_text().replace('requests = "packed"', 'requests = "packed"\npages_per_request = 2'))
    assert main(["run", str(path), "--no-progress"]) == 0
    (row,) = results(tmp_path)
    assert [p["pages"] for p in row["page_answers"]] == [[1, 2], [3]]
    assert row["answer"].startswith("--- page 1-2 ---\n")
    assert [len(r["images"]) for r in chats(emulator)] == [2, 1]
    assert row["prompt_tokens"] == row["estimated_prompt_tokens"]


def test_page_and_document_errors_are_row_errors(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    write_documents(tmp_path)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not a PDF body")
    manifest(
        tmp_path,
        [
            {"id": "past-end", "image": "doc.pdf", "pages": "2,9"},
            {"id": "garbled", "image": "doc.pdf", "pages": "two"},
            {"id": "corrupt", "image": "broken.pdf"},
            {"id": "bad-ocr", "image": "single.png", "ocr": "tesseract-please"},
            {"id": "fine", "image": "doc.pdf", "pages": "2"},
        ],
    )
    path = job(tmp_path, emulator.url)
    path.write_text(path.read_text().replace("dpi = 100", "dpi = 100\nmax_pages = 2"))
    assert main(["run", str(path), "--no-progress"]) == 0
    out = {r["id"]: r for r in results(tmp_path)}
    assert out["past-end"]["error_code"] == "bad_pages" and "9" in out["past-end"]["error_message"]
    assert out["garbled"]["error_code"] == "bad_pages"
    assert out["corrupt"]["error_code"] == "document_corrupt"
    assert out["bad-ocr"]["error_code"] == "bad_ocr" and "local" in out["bad-ocr"]["error_message"]
    assert out["fine"]["status"] == "ok" and out["fine"]["pages_processed"] == [2]
    assert all(r["attempts"] == 0 for k, r in out.items() if k != "fine")  # nothing was sent for them


def test_too_many_pages_is_refused_before_rendering(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    write_documents(tmp_path)
    manifest(tmp_path, [{"id": "pdf", "image": "doc.pdf"}])
    path = job(tmp_path, emulator.url)
    path.write_text(path.read_text().replace("dpi = 100", "dpi = 100\nmax_pages = 2"))
    assert main(["run", str(path), "--no-progress"]) == 0
    (row,) = results(tmp_path)
    assert row["error_code"] == "document_too_long" and "max_pages" in row["error_message"]
    assert chats(emulator) == []


@needs_tesseract
def test_local_ocr_text_goes_to_the_prompt_and_the_result(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    write_documents(tmp_path)
    manifest(
        tmp_path,
        [
            {"id": "tiff", "image": "doc.tiff", "pages": "2-3"},
            {"id": "png", "image": "single.png"},
            {"id": "no-ocr", "image": "single.png", "ocr": "off"},
        ],
    )
    assert main(["run", str(job(tmp_path, emulator.url, ocr="local")), "--no-progress"]) == 0
    tiff, png, no_ocr = results(tmp_path)
    assert tiff["status"] == png["status"] == "ok"
    # What Tesseract read is in the result, page by page, with the pages' own amounts.
    assert AMOUNTS[1] in tiff["ocr_text"] and AMOUNTS[2] in tiff["ocr_text"]
    assert tiff["ocr_text"].startswith("--- page 2 ---\n")
    assert [AMOUNTS[n] in p["ocr_text"] for n, p in ((1, tiff["page_answers"][0]), (2, tiff["page_answers"][1]))] == [
        True,
        True,
    ]
    assert AMOUNTS[3] in png["ocr_text"] and png["page_answers"] is None
    assert no_ocr["ocr_text"] is None
    # ... and it reached the model as a delimited hint, after the prompt, in the request's one text part.
    sent = {r["texts"][0] for r in chats(emulator)}
    hinted = [t for t in sent if "<ocr_text" in t]
    assert len(hinted) == 3 and all(t.startswith("Transcribe the amounts.\n\n") for t in hinted)
    assert any(AMOUNTS[3] in t for t in hinted) and any('page="3"' in t and AMOUNTS[2] in t for t in hinted)
    # The estimate still counts the hint exactly.
    assert tiff["prompt_tokens"] == tiff["estimated_prompt_tokens"]
    assert png["prompt_tokens"] == png["estimated_prompt_tokens"]


@needs_tesseract
def test_hint_off_keeps_the_text_out_of_the_prompt(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]
) -> None:
    write_documents(tmp_path)
    manifest(tmp_path, [{"id": "png", "image": "single.png"}])
    assert main(["run", str(job(tmp_path, emulator.url, ocr="local", extra="hint = false")), "--no-progress"]) == 0
    (row,) = results(tmp_path)
    assert AMOUNTS[3] in row["ocr_text"]
    assert [r["texts"] for r in chats(emulator)] == [["Transcribe the amounts."]]


def test_enhancements_on_a_model_without_them_is_refused_up_front(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    write_documents(tmp_path)
    manifest(tmp_path, [{"id": "png", "image": "single.png"}])
    path = job(tmp_path, emulator.url, ocr="azure-enhancements", extra=f'vision_endpoint = "{emulator.url}"')
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "gpt-4 vision-preview" in err and "'gpt-4o'" in err and "local" in err
    assert emulator.requests() == []
    assert API_KEY not in err


@pytest.mark.parametrize("requests", ["per-page", "packed"])
def test_estimate_counts_document_pages_as_the_run_bills_them(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], requests: str
) -> None:
    write_documents(tmp_path)
    manifest(
        tmp_path,
        [
            {"id": "pdf", "image": "doc.pdf"},
            {"id": "tiff", "image": "doc.tiff", "pages": "2-3"},
            {"id": "png", "image": "single.png"},
        ],
    )
    path = job(tmp_path, emulator.url, requests=requests)
    report = estimate_job(load_spec(path))
    assert main(["run", str(path), "--no-progress"]) == 0
    out = results(tmp_path)
    assert report.total.rows == 3 and report.total.images == 3 + 2 + 1
    assert report.total.requests == len(chats(emulator)) == (6 if requests == "per-page" else 3)
    assert report.total.image_tokens == sum(r["estimated_image_tokens"] for r in out)
    assert report.total.prompt_tokens == sum(r["prompt_tokens"] for r in out)  # exact, as billed
