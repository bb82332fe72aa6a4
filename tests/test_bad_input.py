"""Every kind of bad input gets a clear outcome: a per-row error with its own code while the run goes
on, or an up-front error (exit 2) before anything is sent. This is the table in the issue's note."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from batch.cli import main
from batch.emulator import EmbeddedEmulator
from tests.support import Sample, make_image


def chat_count(emu: EmbeddedEmulator) -> int:
    return len([r for r in emu.requests() if r.get("route") == "azure"])


def test_per_row_bad_inputs(tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str]) -> None:
    img = tmp_path / "img"
    img.mkdir()
    make_image(img / "good.png", (64, 48), 1)
    (img / "empty.png").write_bytes(b"")
    (img / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    (img / "notes.txt").write_text("not an image at all")
    good = (img / "good.png").read_bytes()
    (img / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.new("1", (20_000, 20_000)).save(img / "bomb.png")  # 400 Mpx in a tiny file
    noise = Image.frombytes("RGB", (2700, 2700), os.urandom(2700 * 2700 * 3))
    noise.save(img / "huge.png", compress_level=0)  # > 20 MB: must be downscaled, not failed
    assert (img / "huge.png").stat().st_size > 20 * 1024 * 1024
    make_image(img / "picture.bmp", (40, 30), 2, "BMP")  # readable but not accepted by the service
    (img / "subdir").mkdir()
    (tmp_path.parent / "outside.png").write_bytes(good)
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (9, 9, 9)).save(buf, "PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    cases = [  # image, detail, max_tokens, expected status, expected code
        ("img/good.png", None, None, "ok", None),
        ("img/missing.png", None, None, "error", "image_not_found"),
        ("img/empty.png", None, None, "error", "image_empty"),
        ("img/corrupt.png", None, None, "error", "image_corrupt"),
        ("img/truncated.png", None, None, "error", "image_corrupt"),
        ("img/notes.txt", None, None, "error", "image_corrupt"),
        ("img/bomb.png", None, None, "error", "image_too_large"),
        ("img/huge.png", "low", None, "ok", None),
        ("img/picture.bmp", None, None, "ok", None),
        ("img/subdir", None, None, "error", "image_not_a_file"),
        ("../outside.png", None, None, "error", "path_outside_base"),
        (str(tmp_path.parent / "outside.png"), None, None, "error", "path_outside_base"),
        (None, None, None, "error", "image_missing"),
        ("", None, None, "error", "image_missing"),
        ("img/good.png", "medium", None, "error", "bad_detail"),
        ("img/good.png", "HIGH", None, "ok", None),  # any case is accepted (issue 13, item 9)
        ("img/good.png", None, 0, "error", "bad_max_tokens"),
        ("img/good.png", None, -5, "error", "bad_max_tokens"),
        (data_url, None, None, "ok", None),
        ("data:image/png;base64,@@@notbase64", None, None, "error", "bad_data_url"),
    ]
    n = len(cases)
    pq.write_table(
        pa.table(
            {
                "id": list(range(n)),
                "image": [c[0] for c in cases],
                "detail": [c[1] for c in cases],
                "max_tokens": pa.array([c[2] for c in cases], pa.int64()),
            }
        ),
        tmp_path / "manifest.parquet",
    )
    s = Sample.__new__(Sample)
    s.root, s.manifest = tmp_path, tmp_path / "manifest.parquet"
    assert main(["run", str(s.job(emulator.url)), "--no-progress"]) == 0
    out = pq.read_table(tmp_path / "out/results.parquet").to_pylist()
    got = [(r["status"], r["error_code"]) for r in out]
    assert got == [(c[3], c[4]) for c in cases], [r["error_message"] for r in out]
    for r in out:
        if r["status"] == "error":
            assert r["error_message"] and r["attempts"] == 0  # refused before sending
    assert "to JPEG to fit 20 MB" in out[7]["image_note"] and "JPEG" in out[7]["answer"]
    assert "converted BMP to PNG" in out[8]["image_note"]
    assert chat_count(emulator) == sum(1 for c in cases if c[3] == "ok")


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        (pa.table({"id": ["a", "b", "a"], "image": ["x", "y", "z"]}), "duplicate ids in column 'id': 'a'"),
        (pa.table({"id": ["a", None], "image": ["x", "y"]}), "null id at row 1"),
        (pa.table({"image": ["x"]}), "missing required column 'id'"),
        (pa.table({"id": ["a"], "image": [3]}), "column 'image' has type int64"),
        (pa.table({"id": ["a"], "image": ["x"], "max_tokens": [1.5]}), "'max_tokens' row 0 holds 1.5, not a whole"),
    ],
)
def test_manifest_faults_stop_before_sending(
    tmp_path: Path,
    emulator: EmbeddedEmulator,
    env: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    table: pa.Table,
    needle: str,
) -> None:
    s = Sample(tmp_path, 1)
    pq.write_table(table, s.manifest)
    assert main(["run", str(s.job(emulator.url)), "--no-progress"]) == 2
    assert needle in capfd.readouterr().err
    assert chat_count(emulator) == 0


def test_manifest_that_is_not_parquet(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 1)
    s.manifest.write_text("id,image\n1,a.png\n")
    assert main(["run", str(s.job(emulator.url)), "--no-progress"]) == 2
    assert "is not a readable Parquet file" in capfd.readouterr().err


def test_unknown_key_and_wrong_type_in_job(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 1)
    job = s.job(emulator.url, extra="[limits]\ntpm = 'fast'\nburst = 2\n")
    assert main(["run", str(job)]) == 2
    err = capfd.readouterr().err
    assert "[limits].tpm: expected integer, got str 'fast'" in err
    assert "unknown key burst in [limits]" in err
    assert chat_count(emulator) == 0


def test_bad_command_line_values(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 1)
    assert main(["run", str(s.job(emulator.url)), "--tpm", "0"]) == 2
    assert "0 must be at least 1" in capfd.readouterr().err
    assert main(["run", str(s.job(emulator.url)), "--endpoint", "localhost:80"]) == 2
    assert "--endpoint" in capfd.readouterr().err


def _lossless_webp_damaged_inside() -> bytes:
    """A lossless WebP whose RIFF framing is whole but whose VP8L bitstream has a zeroed hole."""
    im = Image.new("RGB", (200, 160))
    for x in range(0, 200, 7):
        im.paste(((x * 37) % 256, (x * 91) % 256, (x * 13) % 256), (x, 0, x + 3, 160 - x // 2))
    buf = io.BytesIO()
    im.save(buf, "WEBP", lossless=True)
    data = bytearray(buf.getvalue())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    return bytes(data)


@pytest.mark.parametrize("verify", [None, "quick", "full"])
def test_verify_images_option(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], verify: str | None
) -> None:
    """[input].verify_images: quick (the default) sends a file whose framing is whole without decoding
    it, so damage inside its compressed data reaches the service; full decodes it first and refuses
    it. A PNG chunk with a wrong CRC is refused either way."""
    img = tmp_path / "img"
    img.mkdir()
    make_image(img / "good.png", (64, 48), 1)
    (img / "damaged.webp").write_bytes(_lossless_webp_damaged_inside())
    png = bytearray((img / "good.png").read_bytes())
    png[png.index(b"IDAT") + 6] ^= 0x10
    (img / "badcrc.png").write_bytes(bytes(png))
    pq.write_table(
        pa.table(
            {"id": ["good", "damaged", "badcrc"], "image": ["img/good.png", "img/damaged.webp", "img/badcrc.png"]}
        ),
        tmp_path / "manifest.parquet",
    )
    s = Sample.__new__(Sample)
    s.root, s.manifest = tmp_path, tmp_path / "manifest.parquet"
    job = s.job(emulator.url)
    if verify is not None:
        job.write_text(job.read_text().replace("[input]\n", f'[input]\nverify_images = "{verify}"\n', 1))
    assert main(["run", str(job), "--no-progress"]) == 0
    rows = {r["id"]: r for r in pq.read_table(tmp_path / "out/results.parquet").to_pylist()}
    assert rows["good"]["status"] == "ok"
    assert (rows["badcrc"]["error_code"], rows["badcrc"]["attempts"]) == ("image_corrupt", 0)
    assert "fails its CRC check" in rows["badcrc"]["error_message"]
    damaged = rows["damaged"]
    if verify == "full":
        assert (damaged["error_code"], damaged["attempts"]) == ("image_corrupt", 0)
        assert chat_count(emulator) == 1
    else:
        assert damaged["error_code"] != "image_corrupt" and damaged["attempts"] >= 1  # sent as it is
        assert chat_count(emulator) == 2
