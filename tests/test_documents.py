"""Documents as rows: real PDFs and TIFFs made with Pillow, split and rendered by batch.inputs.documents."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from batch.core.errors import ImageError, RowError
from batch.inputs.documents import RenderedPage, is_document, page_count, parse_pages, render_pages

DATA = Path(__file__).resolve().parents[1] / "data" / "financial"


def _page(number: int, size: tuple[int, int] = (300, 400), mode: str = "RGB") -> Image.Image:
    """A page whose number can be read back from its pixels: ``number`` black bars at the top."""
    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    for i in range(number):
        d.rectangle([10 + i * 20, 10, 20 + i * 20, 40], fill="black")
    d.text((10, 60), f"page {number}", fill="black")
    return im.convert(mode)


def _bars(im: Image.Image) -> int:
    """How many black bars the page's top strip holds (the page number drawn by _page)."""
    row = np.asarray(im.convert("L"))[25]
    dark = row < 128
    return int(np.count_nonzero(dark[1:] & ~dark[:-1]) + int(dark[0]))


def _pdf(path: Path, n: int, size: tuple[int, int] = (300, 400)) -> Path:
    pages = [_page(i + 1, size) for i in range(n)]
    pages[0].save(path, "PDF", save_all=True, append_images=pages[1:], resolution=72.0)
    return path


def _tiff(path: Path, n: int, mode: str = "RGB", **params: object) -> Path:
    pages = [_page(i + 1, mode=mode) for i in range(n)]
    pages[0].save(path, "TIFF", save_all=True, append_images=pages[1:], **params)
    return path


def _decoded(page: RenderedPage) -> Image.Image:
    with Image.open(io.BytesIO(page.data)) as im:
        im.load()
        return im.copy()


def _encrypted_pdf() -> bytes:
    """A one-page PDF with a standard security handler whose user password is not empty."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        b"<< /Filter /Standard /V 1 /R 2 /O <" + b"11" * 32 + b"> /U <" + b"22" * 32 + b"> /P -4 >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (i, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [<%s> <%s>] >>\n" % (5, b"ab" * 16, b"ab" * 16))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


# --- parse_pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "n", "expected"),
    [
        (None, 3, [1, 2, 3]),
        ("", 2, [1, 2]),
        ("  ", 2, [1, 2]),
        ("1", 5, [1]),
        ("1-3,7", 9, [1, 2, 3, 7]),
        (" 2 - 4 , 1 ", 5, [2, 3, 4, 1]),
        ("5-", 7, [5, 6, 7]),
        ("3,1-3", 4, [3, 1, 2]),
        ("4-4", 4, [4]),
    ],
)
def test_parse_pages(spec: str | None, n: int, expected: list[int]) -> None:
    assert parse_pages(spec, n) == expected


@pytest.mark.parametrize(
    ("spec", "n", "message"),
    [
        ("abc", 3, "'abc' is not a page or range"),
        ("1,,2", 3, "an empty item"),
        ("1-2-3", 3, "'1-2-3' is not a page or range"),
        ("-2", 3, "'-2' is not a page or range"),
        ("1.5", 3, "'1.5' is not a page or range"),
        ("0", 3, "numbered from 1"),
        ("0-2", 3, "numbered from 1"),
        ("5-3", 9, "range '5-3' is reversed (write 3-5)"),
        ("4", 3, "page 4 is beyond the document's 3 pages"),
        ("2-9", 3, "page 9 is beyond"),
        ("2", 1, "the document's 1 page"),
    ],
)
def test_parse_pages_refuses(spec: str, n: int, message: str) -> None:
    with pytest.raises(RowError) as err:
        parse_pages(spec, n)
    assert err.value.code == "bad_pages"
    assert message in str(err.value)
    assert repr(spec) in str(err.value)


# --- sniffing and counting -----------------------------------------------------------------------


def test_is_document_sniffs_magic_bytes(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "doc.bin", 1)  # the name says nothing
    tif = _tiff(tmp_path / "scan.dat", 1)
    png = tmp_path / "x.pdf"
    _page(1).save(png, "PNG")
    assert is_document(pdf) == "pdf"
    assert is_document(str(tif)) == "tiff"
    assert is_document(pdf.read_bytes()) == "pdf"
    assert is_document(b"junk before\n%PDF-1.7\n") == "pdf"
    assert is_document(b"MM\x00*\x00\x00\x00\x08") == "tiff"
    assert is_document(b"II+\x00") == "tiff"  # BigTIFF
    assert is_document(png) is None
    assert is_document(tmp_path / "missing.pdf") is None
    assert is_document(b"") is None


def test_page_count_pdf_and_tiff(tmp_path: Path) -> None:
    assert page_count(_pdf(tmp_path / "a.pdf", 4)) == 4
    assert page_count(_tiff(tmp_path / "a.tiff", 3)) == 3
    assert page_count(_tiff(tmp_path / "one.tiff", 1)) == 1
    assert page_count((tmp_path / "a.pdf").read_bytes()) == 4


def test_sample_documents_count_and_render() -> None:
    assert page_count(DATA / "statements.pdf") == 3
    assert page_count(DATA / "statements.tiff") == 3
    pages = list(render_pages(DATA / "statements.tiff", [3]))
    assert [p.page for p in pages] == [3]
    assert pages[0].image.mode == "L" and pages[0].dpi == 100.0


# --- rendering -----------------------------------------------------------------------------------


def test_render_pdf_selected_pages_at_dpi(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "doc.pdf", 5, size=(300, 400))  # 300x400 pt at 72 dpi
    pages = list(render_pages(pdf, parse_pages("2,4-5", 5), dpi=144))
    assert [p.page for p in pages] == [2, 4, 5]
    for p in pages:
        assert p.mime == "image/png" and p.dpi == 144 and p.note is None
        assert (p.width, p.height) == (600, 800)
        im = _decoded(p)
        assert im.size == (600, 800)
        assert _bars(im) == p.page  # the right page, in the right order
        assert im.mode == "L"  # black and white page: stored as greyscale


def test_render_tiff_every_page_by_default(tmp_path: Path) -> None:
    tif = _tiff(tmp_path / "doc.tiff", 3, compression="tiff_deflate", dpi=(200, 200))
    pages = list(render_pages(tif))
    assert [p.page for p in pages] == [1, 2, 3]
    assert [_bars(_decoded(p)) for p in pages] == [1, 2, 3]
    assert all(p.dpi == 200.0 and (p.width, p.height) == (300, 400) for p in pages)


def test_render_is_lazy_one_page_at_a_time(tmp_path: Path) -> None:
    tif = _tiff(tmp_path / "doc.tiff", 3)
    it = render_pages(tif, [3, 1])
    first = next(it)
    assert first.page == 3 and _bars(first.image) == 3
    second = next(it)
    assert second.page == 1 and _bars(second.image) == 1
    assert _bars(first.image) == 3  # an earlier page's image is not changed by seeking on
    with pytest.raises(StopIteration):
        next(it)


@pytest.mark.parametrize(
    ("mode", "params"),
    [
        ("1", {"compression": "group4"}),
        ("L", {}),
        ("CMYK", {}),
        ("RGBA", {}),
        ("P", {}),
    ],
)
def test_tiff_modes_become_8bit(tmp_path: Path, mode: str, params: dict[str, object]) -> None:
    tif = _tiff(tmp_path / f"{mode}.tiff", 2, mode=mode, **params)
    pages = list(render_pages(tif))
    assert len(pages) == 2
    for p in pages:
        im = _decoded(p)
        assert im.mode in ("L", "RGB")
        assert _bars(im) == p.page


def test_sixteen_bit_tiff_is_stretched(tmp_path: Path) -> None:
    a = np.full((100, 120), 1000, dtype=np.uint16)
    a[20:40, 10:60] = 4000  # a 12-bit scan in a 16-bit container: bright block on dark ground
    Image.fromarray(a).save(tmp_path / "deep.tiff")
    (page,) = render_pages(tmp_path / "deep.tiff")
    im = _decoded(page)
    assert im.mode == "L"
    assert im.getpixel((30, 30)) == 255 and im.getpixel((5, 5)) == 0


def test_colour_pdf_page_stays_rgb(tmp_path: Path) -> None:
    im = Image.new("RGB", (100, 100), (200, 30, 30))
    im.save(tmp_path / "red.pdf", "PDF")
    (page,) = render_pages(tmp_path / "red.pdf", dpi=72)
    assert _decoded(page).mode == "RGB"


def test_huge_pdf_page_rendered_at_lower_dpi(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "poster.pdf", 1, size=(720, 720))  # 10 x 10 inches
    (page,) = render_pages(pdf, dpi=300, max_pixels=1_000_000)
    assert page.dpi == 100 and (page.width, page.height) == (1000, 1000)
    assert page.note is not None and "100 dpi instead of 300" in page.note


def test_oversized_png_falls_back_to_jpeg(tmp_path: Path) -> None:
    noise = Image.effect_noise((400, 400), 100).convert("RGB")
    noise.save(tmp_path / "photo.pdf", "PDF", resolution=72.0)
    (page,) = render_pages(tmp_path / "photo.pdf", dpi=72, max_png_bytes=50_000)
    assert page.mime == "image/jpeg"
    assert page.note is not None and "sent as JPEG" in page.note
    assert page.data.startswith(b"\xff\xd8\xff")


def test_tiff_frame_over_pixel_limit_is_not_decoded(tmp_path: Path) -> None:
    tif = _tiff(tmp_path / "big.tiff", 1)
    with pytest.raises(ImageError) as err:
        list(render_pages(tif, max_pixels=1000))
    assert err.value.code == "document_too_large"


def test_threads_render_pdfs_concurrently(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "doc.pdf", 4)
    found: list[list[int]] = []

    def work() -> None:
        found.append([_bars(p.image) for p in render_pages(pdf, dpi=72)])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert found == [[1, 2, 3, 4]] * 4


# --- failures ------------------------------------------------------------------------------------


def test_corrupt_pdf(tmp_path: Path) -> None:
    good = _pdf(tmp_path / "good.pdf", 2).read_bytes()
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(good[:200])
    for call in (lambda: page_count(bad), lambda: list(render_pages(bad))):
        with pytest.raises(ImageError) as err:
            call()
        assert err.value.code == "document_corrupt"
        assert "bad.pdf" in str(err.value)


def test_encrypted_pdf(tmp_path: Path) -> None:
    path = tmp_path / "locked.pdf"
    path.write_bytes(_encrypted_pdf())
    with pytest.raises(ImageError) as err:
        page_count(path)
    assert err.value.code == "document_encrypted"
    assert "password" in str(err.value)


def test_corrupt_tiff(tmp_path: Path) -> None:
    good = _tiff(tmp_path / "good.tiff", 2, compression="tiff_deflate").read_bytes()
    bad = tmp_path / "bad.tiff"
    bad.write_bytes(good[:300])
    with pytest.raises(ImageError) as err:
        list(render_pages(bad))
    assert err.value.code == "document_corrupt"


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda p: p, "image_not_found"),
        (lambda p: (p.write_bytes(b""), p)[1], "image_empty"),
        (lambda p: (p.mkdir(), p)[1], "image_not_a_file"),
        (lambda p: (p.write_bytes(b"\x89PNG\r\n\x1a\nnot a document"), p)[1], "document_unsupported"),
    ],
)
def test_file_problems(tmp_path: Path, make: object, code: str) -> None:
    path = make(tmp_path / "doc.pdf")  # type: ignore[operator]
    with pytest.raises(ImageError) as err:
        page_count(path)
    assert err.value.code == code


def test_pages_beyond_document_in_render(tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "doc.pdf", 2)
    with pytest.raises(RowError) as err:
        list(render_pages(pdf, [1, 3]))
    assert err.value.code == "bad_pages"
    with pytest.raises(ValueError, match="dpi"):
        list(render_pages(pdf, dpi=5000))
