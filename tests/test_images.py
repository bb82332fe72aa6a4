from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

import batch.inputs.images as images_module
from batch.core.errors import ImageError
from batch.inputs.images import (
    VERIFY_MODES,
    EncodedImage,
    ImageInfo,
    VerifyMode,
    data_url_bytes,
    load_image,
    probe_image,
    sniff_mime,
    to_data_url,
)


def _noise(width: int, height: int) -> Image.Image:
    return Image.effect_noise((width, height), 80).convert("RGB")


def _save(im: Image.Image, path: Path, fmt: str | None = None, **params: object) -> bytes:
    im.save(path, format=fmt, **params)
    return path.read_bytes()


def _decode(img: EncodedImage) -> Image.Image:
    with Image.open(io.BytesIO(img.data)) as im:
        im.load()
        return im.copy()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` grey pixels but holds almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + _png_chunk(b"IEND", b"")
    )


# --- sendable formats go out byte for byte ------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "suffix", "mime"),
    [
        ("PNG", "png", "image/png"),
        ("JPEG", "jpg", "image/jpeg"),
        ("WEBP", "webp", "image/webp"),
        ("GIF", "gif", "image/gif"),
    ],
)
def test_sendable_formats_are_sent_unchanged(tmp_path: Path, fmt: str, suffix: str, mime: str) -> None:
    path = tmp_path / f"photo.{suffix}"
    original = _save(_noise(64, 48), path, fmt)
    img = load_image(path)
    assert img.data == original
    assert (img.mime, img.width, img.height, img.reencoded) == (mime, 64, 48, None)


def test_mime_comes_from_the_content_not_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "really-a-png.jpg"
    original = _save(_noise(10, 10), path, "PNG")
    img = load_image(path)
    assert (img.mime, img.data) == ("image/png", original)


def test_camera_mpo_is_sent_unchanged_as_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "camera.jpg"
    original = _save(
        Image.new("RGB", (40, 30), "red"), path, "MPO", save_all=True, append_images=[Image.new("RGB", (40, 30))]
    )
    img = load_image(path)
    assert (img.data, img.mime, img.reencoded) == (original, "image/jpeg", None)


def test_rgba_png_keeps_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    original = _save(Image.new("RGBA", (8, 8), (1, 2, 3, 4)), path)
    assert load_image(path).data == original


# --- other formats are converted ----------------------------------------------------------------


def test_bmp_is_converted_to_png_with_the_same_pixels(tmp_path: Path) -> None:
    source = _noise(50, 30)
    path = tmp_path / "scan.bmp"
    _save(source, path)
    img = load_image(path)
    assert (img.mime, img.width, img.height, img.reencoded) == ("image/png", 50, 30, "converted BMP to PNG")
    assert sniff_mime(img.data) == "image/png"
    assert _decode(img).tobytes() == source.tobytes()


def test_rgba_tiff_keeps_transparency(tmp_path: Path) -> None:
    path = tmp_path / "a.tiff"
    _save(Image.new("RGBA", (5, 5), (10, 20, 30, 40)), path)
    img = load_image(path)
    assert img.reencoded == "converted TIFF to PNG"
    assert _decode(img).getpixel((2, 2)) == (10, 20, 30, 40)


def test_cmyk_tiff_becomes_rgb_png(tmp_path: Path) -> None:
    path = tmp_path / "print.tif"
    _save(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), path)
    decoded = _decode(load_image(path))
    assert decoded.mode == "RGB"
    assert decoded.getpixel((0, 0)) == (255, 0, 0)


def test_16_bit_tiff_stays_16_bit(tmp_path: Path) -> None:
    path = tmp_path / "deep.tif"
    _save(Image.new("I;16", (6, 6), 40_000), path)
    decoded = _decode(load_image(path))
    assert decoded.getpixel((0, 0)) == 40_000


def test_float_tiff_is_stretched_to_8_bit_grey(tmp_path: Path) -> None:
    im = Image.new("F", (2, 1))
    im.putpixel((0, 0), -1.0)
    im.putpixel((1, 0), 3.0)
    path = tmp_path / "float.tif"
    _save(im, path)
    decoded = _decode(load_image(path))
    assert decoded.mode == "L"
    assert (decoded.getpixel((0, 0)), decoded.getpixel((1, 0))) == (0, 255)


def test_animated_gif_sends_its_first_frame_as_png(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 10), colour) for colour in ("red", "lime", "blue")]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    img = load_image(path)
    assert img.mime == "image/png"
    assert img.reencoded == "converted GIF (frame 1 of 3) to PNG"
    assert _decode(img).convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_multi_page_tiff_sends_page_one(tmp_path: Path) -> None:
    pages = [Image.new("L", (12, 12), value) for value in (10, 200)]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=[p.copy() for p in pages[1:]])
    img = load_image(path)
    assert img.reencoded == "converted TIFF (frame 1 of 2) to PNG"
    assert _decode(img).getpixel((0, 0)) == 10


# --- size limits --------------------------------------------------------------------------------


def test_png_over_max_bytes_is_downscaled_to_a_jpeg_that_fits(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    original = _save(_noise(600, 400), path)
    max_bytes = len(original) // 10
    img = load_image(path, max_bytes=max_bytes)
    assert img.mime == "image/jpeg"
    assert len(img.data) <= max_bytes
    assert img.width < 600 and img.height < 400
    assert abs(img.width / img.height - 1.5) < 0.01
    assert (
        img.reencoded
        == f"re-encoded PNG, downscaled 600x400 to {img.width}x{img.height} JPEG to fit {max_bytes:,} bytes"
    )
    assert _decode(img).size == (img.width, img.height)


def test_converted_image_falls_back_to_full_size_jpeg_when_png_is_too_big(tmp_path: Path) -> None:
    path = tmp_path / "noise.bmp"
    _save(_noise(300, 200), path)
    png_size = len(load_image(path).data)
    img = load_image(path, max_bytes=png_size - 1)
    assert img.mime == "image/jpeg"
    assert (img.width, img.height) == (300, 200)
    assert img.reencoded == f"converted BMP to JPEG to fit {png_size - 1:,} bytes"


def test_transparent_image_is_flattened_onto_white_for_jpeg(tmp_path: Path) -> None:
    im = _noise(200, 200).convert("RGBA")
    im.paste((0, 0, 0, 0), (0, 0, 100, 200))  # left half fully transparent
    path = tmp_path / "cutout.png"
    size = len(_save(im, path))
    decoded = _decode(load_image(path, max_bytes=size // 2)).convert("RGB")
    r, g, b = decoded.getpixel((5, decoded.height // 2))  # type: ignore[misc]
    assert min(r, g, b) > 240


def test_limit_is_described_in_megabytes_when_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    _save(_noise(1200, 1200), path)  # about 4 MB of noise
    img = load_image(path, max_bytes=1024 * 1024)
    assert img.reencoded is not None and img.reencoded.endswith("to fit 1 MB")
    assert len(img.data) <= 1024 * 1024


def test_pixel_limit_is_checked_before_decoding(tmp_path: Path) -> None:
    # The header says 10000x10000 but the pixel data is missing: decoding would report corruption,
    # so image_too_large proves the limit was applied before any decoding.
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(10_000, 10_000))
    with pytest.raises(ImageError) as info:
        load_image(path, max_pixels=50_000_000)
    assert info.value.code == "image_too_large"
    assert "huge.png is 10000x10000 (100,000,000 pixels), over the limit of 50,000,000" in str(info.value)


def test_pillow_bomb_warning_does_not_become_an_error(tmp_path: Path) -> None:
    # 100M pixels is over Pillow's warning threshold (89.5M); pytest turns warnings into errors.
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(10_000, 10_000))
    assert probe_image(path) == ImageInfo(10_000, 10_000, "PNG", "image/png", 1)
    with pytest.raises(ImageError) as info:
        load_image(path)  # within the default limit: decoded, and found truncated
    assert info.value.code == "image_corrupt"


def test_pillow_bomb_error_is_image_too_large(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(20_000, 20_000))
    for call in (probe_image, load_image):
        with pytest.raises(ImageError) as info:
            call(path)
        assert info.value.code == "image_too_large"
        assert "bomb.png" in str(info.value)


# --- failures -----------------------------------------------------------------------------------


def _error(path: Path) -> ImageError:
    with pytest.raises(ImageError) as info:
        load_image(path)
    return info.value


def test_errors_name_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    err = _error(Path("imgs/missing.png"))
    assert err.code == "image_not_found"
    assert str(err) == "image file not found: imgs/missing.png"


def test_missing_parent_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    assert _error(tmp_path / "file" / "child.png").code == "image_not_found"


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    err = _error(tmp_path)
    assert err.code == "image_not_a_file"
    assert "is a directory" in str(err)


def test_fifo_is_not_a_file(tmp_path: Path) -> None:
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    err = _error(path)
    assert err.code == "image_not_a_file"
    assert "not a regular file" in str(err)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    err = _error(path)
    assert err.code == "image_empty"
    assert "empty.png" in str(err)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    _save(_noise(4, 4), path)
    path.chmod(0)
    try:
        err = _error(path)
    finally:
        path.chmod(0o600)
    assert err.code == "image_unreadable"
    assert "secret.png" in str(err)


def test_path_the_os_refuses_is_unreadable(tmp_path: Path) -> None:
    # Runs as root too, where a chmod 0 file stays readable: a name over NAME_MAX fails stat().
    path = tmp_path / ("x" * 300 + ".png")
    err = _error(path)
    assert err.code == "image_unreadable"
    assert str(err) == f"cannot read image file {path}: File name too long"


def test_text_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image at all", encoding="utf-8")
    err = _error(path)
    assert err.code == "image_corrupt"
    assert str(err) == f"not an image, or a format Pillow cannot read: {path}"


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp")]
)
def test_truncated_image_is_corrupt(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"cut.{suffix}"
    data = _save(_noise(200, 200), path, fmt)
    path.write_bytes(data[: len(data) // 2])
    err = _error(path)
    assert err.code == "image_corrupt"
    assert f"cut.{suffix}" in str(err)


def test_corrupt_header_probe_fails_but_truncated_body_probes(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    data = _save(_noise(30, 20), path)
    path.write_bytes(data[: len(data) // 2])
    assert probe_image(path) == ImageInfo(30, 20, "PNG", "image/png", 1)  # header only
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(ImageError) as info:
        probe_image(path)
    assert info.value.code == "image_corrupt"


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("missing", "image_not_found"),
        ("dir", "image_not_a_file"),
        ("empty", "image_empty"),
    ],
)
def test_probe_errors(tmp_path: Path, setup: str, code: str) -> None:
    path = tmp_path / "x.png"
    if setup == "dir":
        path.mkdir()
    elif setup == "empty":
        path.write_bytes(b"")
    with pytest.raises(ImageError) as info:
        probe_image(path)
    assert info.value.code == code


# --- probing, data URLs, sniffing ---------------------------------------------------------------


def test_probe_reports_header_facts(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 10), colour) for colour in ("red", "lime", "blue")]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    bmp = tmp_path / "a.bmp"
    _save(_noise(7, 9), bmp)
    jpg = tmp_path / "a.jpg"
    _save(_noise(640, 480), jpg)
    assert probe_image(gif) == ImageInfo(20, 10, "GIF", "image/gif", 3)
    assert probe_image(bmp) == ImageInfo(7, 9, "BMP", "image/bmp", 1)
    assert probe_image(jpg) == ImageInfo(640, 480, "JPEG", "image/jpeg", 1)


def test_data_url_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    original = _save(_noise(3, 3), path)
    url = to_data_url(load_image(path))
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :]) == original


def test_encoded_image_repr_leaves_out_the_bytes() -> None:
    img = EncodedImage(b"\x89PNG" * 1000, "image/png", 1, 1, None)
    assert repr(img) == "EncodedImage(mime='image/png', width=1, height=1, reencoded=None)"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"GIF87a", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"BM\x00\x00", None),
        (b"", None),
        (b"\x89PN", None),
    ],
)
def test_sniff_mime(data: bytes, mime: str | None) -> None:
    assert sniff_mime(data) == mime


def test_sniff_mime_agrees_with_pillow_output(tmp_path: Path) -> None:
    for fmt, mime in [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")]:
        assert sniff_mime(_save(_noise(4, 4), tmp_path / f"x.{fmt.lower()}", fmt)) == mime


# --- verify = "quick": the structure walk, and what only a full decode catches ---------------------


def _pattern(width: int, height: int) -> Image.Image:
    """A deterministic picture with edges and colour (Image.effect_noise differs from run to run)."""
    im = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(im)
    for k in range(0, width, 7):
        draw.line([(k, 0), (width - k, height)], fill=((k * 37) % 256, (k * 91) % 256, (k * 13) % 256), width=3)
    for k in range(0, height, 11):
        draw.ellipse([k % width, k, k % width + 20, k + 15], outline=((k * 5) % 256, 200, (k * 3) % 256))
    return im


def _bytes(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def _sendable_variants() -> dict[str, tuple[bytes, str]]:
    rgb = _pattern(120, 90)
    return {
        "png": (_bytes(rgb, "PNG"), "image/png"),
        "png palette + tRNS": (_bytes(rgb.convert("P"), "PNG", transparency=0), "image/png"),
        "png 16-bit grey": (_bytes(Image.new("I;16", (120, 90), 4000), "PNG"), "image/png"),
        "png 1-bit": (_bytes(rgb.convert("1"), "PNG"), "image/png"),
        "apng": (_bytes(rgb, "PNG", save_all=True, append_images=[rgb.rotate(90)]), "image/png"),
        "jpeg": (_bytes(rgb, "JPEG"), "image/jpeg"),
        "jpeg progressive": (_bytes(rgb, "JPEG", progressive=True), "image/jpeg"),
        "jpeg grey": (_bytes(rgb.convert("L"), "JPEG"), "image/jpeg"),
        "jpeg cmyk": (_bytes(rgb.convert("CMYK"), "JPEG"), "image/jpeg"),
        "jpeg 4:2:0 restart markers": (_bytes(rgb, "JPEG", subsampling=2, restart_marker_rows=1), "image/jpeg"),
        "mpo": (_bytes(rgb, "MPO", save_all=True, append_images=[rgb]), "image/jpeg"),
        "webp lossy": (_bytes(rgb, "WEBP"), "image/webp"),
        "webp lossless": (_bytes(rgb, "WEBP", lossless=True), "image/webp"),
        "webp alpha (VP8X, ALPH)": (_bytes(rgb.convert("RGBA"), "WEBP"), "image/webp"),
        "webp animated": (
            _bytes(rgb, "WEBP", save_all=True, append_images=[rgb.rotate(90)], duration=100),
            "image/webp",
        ),
        "webp with icc": (_bytes(rgb, "WEBP", icc_profile=b"\0" * 128), "image/webp"),
    }


@pytest.mark.parametrize("name", list(_sendable_variants()))
def test_quick_check_sends_whole_files_without_decoding_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    data, mime = _sendable_variants()[name]
    path = tmp_path / "img"
    path.write_bytes(data)
    with Image.open(path) as im:
        size = im.size

    def no_pillow(*args: object, **kwargs: object) -> None:
        raise AssertionError("the quick check must not open the image with Pillow")

    monkeypatch.setattr(images_module.Image, "open", no_pillow)
    img = load_image(path)  # quick is the default
    assert (img.data, img.mime, (img.width, img.height), img.reencoded) == (data, mime, size, None)


@pytest.mark.parametrize("verify", ["quick", "full"])
@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_truncated_image_is_corrupt_in_both_modes(tmp_path: Path, verify: VerifyMode, fmt: str, suffix: str) -> None:
    data = _bytes(_pattern(200, 150), fmt)
    path = tmp_path / f"cut.{suffix}"
    for cut in (len(data) // 3, len(data) // 2, len(data) * 9 // 10):
        path.write_bytes(data[:cut])
        with pytest.raises(ImageError) as info:
            load_image(path, verify=verify)
        assert info.value.code == "image_corrupt"


@pytest.mark.parametrize("verify", ["quick", "full"])
def test_png_chunk_with_a_wrong_crc_is_corrupt(tmp_path: Path, verify: VerifyMode) -> None:
    data = bytearray(_bytes(_pattern(60, 40), "PNG"))
    start = data.index(b"IDAT") + 4
    data[start + 10] ^= 0x01  # one bit of the compressed pixels
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as info:
        load_image(path, verify=verify)
    assert info.value.code == "image_corrupt"
    assert "PNG chunk 'IDAT' at byte" in str(info.value) and "fails its CRC check" in str(info.value)


def test_unknown_verify_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(_bytes(_pattern(4, 4), "PNG"))
    with pytest.raises(ValueError, match="verify must be one of quick, full"):
        load_image(path, verify="fast")  # type: ignore[arg-type]


def _damaged_inside(fmt: str) -> bytes:
    """A file whose framing is whole (sizes, markers, CRCs) but whose compressed data is damaged."""
    im = _pattern(200, 160)
    if fmt == "webp-lossless":
        data = bytearray(_bytes(im, "WEBP", lossless=True))
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    elif fmt == "webp-lossy":
        data = bytearray(_bytes(im, "WEBP", quality=80))
        k = len(data) // 2
        data[k : k + 16] = b"\xff" * 16
    else:  # png: the deflate stream damaged, then the chunk's CRC recomputed (as a faulty encoder would)
        data = bytearray(_bytes(im, "PNG"))
        start = data.index(b"IDAT") - 4
        (length,) = struct.unpack_from(">I", data, start)
        data[start + 8 + length // 2 : start + 8 + length // 2 + 8] = bytes(8)
        struct.pack_into(">I", data, start + 8 + length, zlib.crc32(bytes(data[start + 4 : start + 8 + length])))
    return bytes(data)


@pytest.mark.parametrize("fmt", ["webp-lossless", "webp-lossy", "png"])
def test_what_only_a_full_decode_catches(tmp_path: Path, fmt: str) -> None:
    """Documents the quick check's blind spot: damage inside the compressed data whose framing is
    intact (a VP8/VP8L bitstream, or a deflate stream under matching CRCs). quick sends such a file
    (the service's own decoder then decides); verify = "full" makes it image_corrupt here."""
    path = tmp_path / "damaged.bin"
    path.write_bytes(_damaged_inside(fmt))
    assert load_image(path, verify="quick").reencoded is None
    with pytest.raises(ImageError) as info:
        load_image(path, verify="full")
    assert info.value.code == "image_corrupt"


def test_jpeg_damage_is_found_by_the_walk_when_a_header_breaks(tmp_path: Path) -> None:
    data = bytearray(_bytes(_pattern(64, 48), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 10] = 0x55  # the first component's sampling factors: 5x5 is not allowed
    path = tmp_path / "bad-sof.jpg"
    path.write_bytes(bytes(data))
    for verify in VERIFY_MODES:
        with pytest.raises(ImageError) as info:
            load_image(path, verify=verify)
        assert info.value.code == "image_corrupt"


def test_full_mode_decodes_and_still_sends_the_original_bytes(tmp_path: Path) -> None:
    for fmt in ("PNG", "JPEG", "WEBP"):
        path = tmp_path / f"a.{fmt.lower()}"
        data = _bytes(_pattern(50, 40), fmt)
        path.write_bytes(data)
        img = load_image(path, verify="full")
        assert (img.data, img.width, img.height, img.reencoded) == (data, 50, 40, None)


def test_data_url_bytes_is_the_data_url_in_ascii() -> None:
    img = EncodedImage(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png", 1, 1, None)
    assert data_url_bytes(img) == to_data_url(img).encode("ascii")


@pytest.mark.parametrize("verify", ["quick", "full"])
def test_jpeg_without_its_end_marker_is_truncated(tmp_path: Path, verify: VerifyMode) -> None:
    data = _bytes(_pattern(80, 60), "JPEG")
    assert data.endswith(b"\xff\xd9")
    path = tmp_path / "no-eoi.jpg"
    path.write_bytes(data[:-2])
    with pytest.raises(ImageError) as info:
        load_image(path, verify=verify)
    assert info.value.code == "image_corrupt"
    assert "truncated" in str(info.value)
    path.write_bytes(data + b"trailing bytes after EOI are ignored, as decoders do")
    assert load_image(path, verify=verify).reencoded is None
