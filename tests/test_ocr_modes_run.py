"""The Azure OCR modes end to end: azure-read and the legacy enhancements, against the emulator's
own OCR routes over loopback, with the Vision key kept as secret as the chat key."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel
from batch.ocr.engine import LocalOcr
from tests.support import API_KEY
from tests.test_documents_run import AMOUNTS, job, manifest, write_documents

pytestmark = pytest.mark.skipif(LocalOcr.available() is not None, reason="the emulator's OCR needs Tesseract")
VISION_KEY = "cv-test-VISION-KEY-MUST-NOT-LEAK-51e2"


@pytest.fixture
def vision_emulator() -> Iterator[EmbeddedEmulator]:
    config = EmulatorConfig(
        deployments=[
            Deployment("gpt-4o", "gpt-4o", tpm=10_000_000),
            Deployment("gpt4v", "gpt-4", tpm=10_000_000),  # gpt-4 vision-preview: has the enhancements
        ],
        api_keys=frozenset({API_KEY}),
        vision_api_keys=frozenset({VISION_KEY}),
        latency=LatencyModel.zero(),
        seed=3,
    )
    with EmbeddedEmulator(config) as emu:
        yield emu


@pytest.fixture
def vision_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("AZURE_VISION_ENDPOINT", raising=False)
    monkeypatch.setenv("AZURE_VISION_KEY", VISION_KEY)
    return {**env, "AZURE_VISION_KEY": VISION_KEY}


def results(root: Path) -> list[dict[str, Any]]:
    return pq.read_table(root / "out.parquet").to_pylist()


def everything_written(root: Path, emu: EmbeddedEmulator, *streams: str) -> str:
    """Every byte a run leaves behind: outputs, ledger, journals, plus the emulator's books."""
    chunks = [*streams, json.dumps(emu.requests()), json.dumps(emu.stats())]
    for p in root.rglob("*"):
        if p.is_file() and p.suffix in (".parquet", ".json", ".jsonl", ".toml"):
            chunks.append(p.read_bytes().decode("latin-1"))
    return "\n".join(chunks)


def test_azure_read_text_reaches_prompt_and_result(
    tmp_path: Path, vision_emulator: EmbeddedEmulator, vision_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    write_documents(tmp_path)
    manifest(tmp_path, [{"id": "pdf", "image": "doc.pdf", "pages": "1-2"}, {"id": "png", "image": "single.png"}])
    path = job(tmp_path, vision_emulator.url, ocr="azure-read", extra=f'vision_endpoint = "{vision_emulator.url}"')
    assert main(["run", str(path), "--no-progress"]) == 0
    pdf, png = results(tmp_path)
    assert pdf["status"] == png["status"] == "ok"
    assert AMOUNTS[0] in pdf["ocr_text"] and AMOUNTS[1] in pdf["ocr_text"] and AMOUNTS[3] in png["ocr_text"]
    assert [AMOUNTS[0] in p["ocr_text"] for p in pdf["page_answers"]] == [True, False]
    reads = [r for r in vision_emulator.requests() if r["route"] == "vision-read"]
    assert len(reads) == 3 and all(r["status"] == 200 for r in reads)
    hinted = [r["texts"][0] for r in vision_emulator.requests() if r["route"] == "azure"]
    assert len(hinted) == 3 and all('<ocr_text source="azure-read"' in t for t in hinted)
    assert pdf["prompt_tokens"] == pdf["estimated_prompt_tokens"]
    out = capsys.readouterr()
    assert VISION_KEY not in everything_written(tmp_path, vision_emulator, out.out, out.err)


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[str]:
    """``tmp_path/www`` served over loopback http, as an image archive on a web server would be."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


def test_azure_read_passes_an_http_image_by_url(
    tmp_path: Path, vision_emulator: EmbeddedEmulator, vision_env: dict[str, str], http_folder: str
) -> None:
    write_documents(tmp_path)
    (tmp_path / "single.png").rename(tmp_path / "www" / "scan.png")
    manifest(tmp_path, [{"id": "web", "image": f"{http_folder}/scan.png"}])
    path = job(tmp_path, vision_emulator.url, ocr="azure-read", extra=f'vision_endpoint = "{vision_emulator.url}"')
    assert main(["run", str(path), "--no-progress"]) == 0
    (row,) = results(tmp_path)
    assert row["status"] == "ok", row
    assert AMOUNTS[3] in row["ocr_text"]
    (read,) = [r for r in vision_emulator.requests() if r["route"] == "vision-read"]
    assert read["images"][0]["source"] == "url"  # the service downloaded it; we never did


def test_enhancements_return_grounding_for_gpt4_vision_preview(
    tmp_path: Path, vision_emulator: EmbeddedEmulator, vision_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    write_documents(tmp_path)
    manifest(tmp_path, [{"id": "png", "image": "single.png"}, {"id": "tiff", "image": "doc.tiff", "pages": "1-2"}])
    path = job(tmp_path, vision_emulator.url, ocr="azure-enhancements", requests="packed")
    text = path.read_text().replace('deployment = "gpt-4o"', 'deployment = "gpt4v"\nmodel = "gpt-4"')
    path.write_text(text.replace("[ocr]", f'[ocr]\nvision_endpoint = "{vision_emulator.url}"'))
    assert main(["run", str(path), "--no-progress"]) == 0
    png, tiff = results(tmp_path)
    assert png["status"] == tiff["status"] == "ok"
    assert png["finish_reason"] in ("stop", "length")  # the legacy object form, normalised
    lines = png["grounding"]  # a typed column: lines of {page, text, spans: [{text, offset, length, polygon}]}
    assert lines and all(line["page"] is None for line in lines)
    assert any(AMOUNTS[3] in line["text"] for line in lines)
    assert all(len(span["polygon"]) == 4 for line in lines for span in line["spans"])
    assert all(set(point) == {"x", "y"} for line in lines for span in line["spans"] for point in span["polygon"])
    answer = png["answer"]
    assert all(answer[s["offset"] : s["offset"] + s["length"]] == s["text"] for line in lines for s in line["spans"])
    # The enhancements take one image per call: packing is off, one request per page.
    assert sorted({line["page"] for line in tiff["grounding"]}) == [1, 2]
    assert [p["pages"] for p in tiff["page_answers"]] == [[1], [2]]
    calls = [r for r in vision_emulator.requests() if r["route"] == "azure-extensions"]
    assert len(calls) == 3 and all(len(r["images"]) == 1 for r in calls)
    out = capsys.readouterr()
    assert VISION_KEY not in everything_written(tmp_path, vision_emulator, out.out, out.err)


def test_per_row_enhancements_on_another_model_is_a_row_error(
    tmp_path: Path, vision_emulator: EmbeddedEmulator, vision_env: dict[str, str]
) -> None:
    write_documents(tmp_path)
    manifest(
        tmp_path,
        [{"id": "a", "image": "single.png", "ocr": "azure-enhancements"}, {"id": "b", "image": "single.png"}],
    )
    path = job(tmp_path, vision_emulator.url, extra=f'vision_endpoint = "{vision_emulator.url}"')
    assert main(["run", str(path), "--no-progress"]) == 0
    a, b = results(tmp_path)
    assert a["error_code"] == "ocr_unsupported" and "gpt-4 vision-preview" in a["error_message"]
    assert b["status"] == "ok"


def test_wrong_vision_key_stops_the_run_with_advice(
    tmp_path: Path,
    vision_emulator: EmbeddedEmulator,
    vision_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AZURE_VISION_KEY", "cv-wrong-key-ALSO-SECRET-0000")
    write_documents(tmp_path)
    manifest(tmp_path, [{"id": "png", "image": "single.png"}])
    path = job(tmp_path, vision_emulator.url, ocr="azure-read", extra=f'vision_endpoint = "{vision_emulator.url}"')
    assert main(["run", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "401" in err and "AZURE_VISION_KEY" in err and "cv-wrong-key" not in err


def test_azure_read_without_a_key_is_refused_before_sending(
    tmp_path: Path,
    vision_emulator: EmbeddedEmulator,
    vision_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AZURE_VISION_KEY")
    write_documents(tmp_path)
    manifest(tmp_path, [{"id": "png", "image": "single.png"}])
    path = job(tmp_path, vision_emulator.url, ocr="azure-read", extra=f'vision_endpoint = "{vision_emulator.url}"')
    assert main(["run", str(path), "--no-progress"]) == 2
    assert "AZURE_VISION_KEY" in capsys.readouterr().err
    assert vision_emulator.requests() == []


def test_azure_read_rides_out_429s_and_5xx(
    tmp_path: Path, vision_emulator: EmbeddedEmulator, vision_env: dict[str, str]
) -> None:
    from batch.emulator import Fault

    # Rules without a deployment apply to the read route too; a read comes before each chat call.
    vision_emulator.set_faults(
        [Fault("429", count=2, retry_after_s=0.1), Fault("500", count=1), Fault("reset", count=1)]
    )
    write_documents(tmp_path)
    manifest(tmp_path, [{"id": "pdf", "image": "doc.pdf"}])
    path = job(tmp_path, vision_emulator.url, ocr="azure-read", extra=f'vision_endpoint = "{vision_emulator.url}"')
    assert main(["run", str(path), "--no-progress"]) == 0
    (pdf,) = results(tmp_path)
    assert pdf["status"] == "ok" and pdf["pages_processed"] == [1, 2, 3]
    assert all(AMOUNTS[n] in p["ocr_text"] for n, p in enumerate(pdf["page_answers"]))
    statuses = [r["status"] for r in vision_emulator.requests() if r["route"] == "vision-read"]
    assert statuses.count(200) == 3 and 429 in statuses and 500 in statuses and None in statuses  # None: reset
