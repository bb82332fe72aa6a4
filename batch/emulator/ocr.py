"""The emulator's own OCR: Tesseract in-process (``tesserocr``), lines and words with boxes.

Both OCR routes read pages through ``OcrEngine``: Azure AI Vision's ``read`` (``vision``) and
the legacy gpt-4 ``vision-preview`` enhancements (``enhancements``). It shares nothing with the
client's own OCR: the emulator stands in for a foreign service.

A page is read once, at its own resolution (no upscaling, no deskew: a clean 11 px print reads
fine), in Tesseract's automatic layout mode, so text blocks come back as blocks, each holding
lines of words with their pixel boxes and confidences.

Threads: recognition is blocking CPU work, so it runs in a ``ThreadPoolExecutor`` of
``threads`` workers, never on the server's loop. Each worker thread keeps its own
``PyTessBaseAPI`` per language (an engine is not re-entrant; about 80 MB each), created on
first use. Tesseract releases the GIL while it recognises. The PyPI wheel's libtesseract is
built without OpenMP, so an engine uses one core whatever ``OMP_THREAD_LIMIT`` says (for an
OpenMP build the engine sets ``OMP_THREAD_LIMIT=1`` unless it is set, before it first imports
tesserocr); the worker count is the CPU bound. Results are cached by the image's
sha256 and the language (touched only from the loop thread), so a benchmark that sends the same
page again pays for it once.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    import tesserocr  # type: ignore[import-untyped]  # ships a .pyi but no py.typed marker

__all__ = ["LANGUAGES", "Box", "Line", "OcrEngine", "OcrUnavailable", "Page", "Word", "find_tessdata"]

#: ISO 639-1 codes a caller may ask for -> Tesseract's language names (used when installed).
LANGUAGES: dict[str, str] = {
    "en": "eng",
    "de": "deu",
    "fr": "fra",
    "es": "spa",
    "it": "ita",
    "pt": "por",
    "nl": "nld",
}
#: Where Debian, Ubuntu, Fedora and Homebrew put the language data (searched in this order).
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)


class OcrUnavailable(RuntimeError):
    """tesserocr or the language data is missing."""


@dataclass(frozen=True, slots=True)
class Box:
    """A pixel rectangle: left/top inclusive, right/bottom exclusive (Tesseract's convention)."""

    left: int
    top: int
    right: int
    bottom: int

    def corners(self) -> list[tuple[int, int]]:
        """Clockwise from the top-left corner, as Azure lists polygon points."""
        return [(self.left, self.top), (self.right, self.top), (self.right, self.bottom), (self.left, self.bottom)]


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    box: Box
    confidence: float  # 0..1


@dataclass(frozen=True, slots=True)
class Line:
    words: tuple[Word, ...]
    box: Box

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass(frozen=True, slots=True)
class Page:
    width: int
    height: int
    blocks: tuple[tuple[Line, ...], ...]

    @property
    def lines(self) -> list[Line]:
        return [line for block in self.blocks for line in block]


def find_tessdata(tess_lang: str = "eng") -> Path | None:
    """The folder holding ``<tess_lang>.traineddata`` (``TESSDATA_PREFIX`` first), or None."""
    candidates: list[Path] = []
    env = os.environ.get("TESSDATA_PREFIX")
    if env:
        candidates += [Path(env), Path(env) / "tessdata"]
    candidates += [Path(d) for d in TESSDATA_DIRS]
    for folder in candidates:
        if (folder / f"{tess_lang}.traineddata").is_file():
            return folder
    return None


def decode_page(data: bytes) -> Image.Image:
    """The first frame as 8-bit grey (transparency flattened onto white); ``ValueError`` if undecodable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the callers check sizes
            img = Image.open(io.BytesIO(data))
        with img:
            img.seek(0)
            img.load()
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(white, rgba).convert("L")
            return img.convert("L")
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ValueError(f"undecodable image: {exc}") from exc


class OcrEngine:
    """Reads pages on ``threads`` worker threads (see the module docstring)."""

    def __init__(self, threads: int, cache_size: int = 256) -> None:
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="emulator-ocr")
        self._local = threading.local()
        self._apis: list[tesserocr.PyTessBaseAPI] = []
        self._apis_lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], Page] = OrderedDict()
        self._cache_size = cache_size
        self.pages_read = 0  # pages Tesseract really read (cache misses)
        self.cache_hits = 0
        self.seconds = 0.0  # wall time of those reads

    async def read(self, data: bytes, *, digest: str, tess_lang: str = "eng") -> Page:
        """OCR ``data`` (an image file's bytes whose sha256 is ``digest``) off the loop.
        Raises ``ValueError`` for an undecodable image, ``OcrUnavailable`` without Tesseract."""
        key = (digest, tess_lang)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return cached
        start = time.perf_counter()
        page = await asyncio.get_running_loop().run_in_executor(self._executor, self._read, data, tess_lang)
        self.seconds += time.perf_counter() - start
        self.pages_read += 1
        self._cache[key] = page
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return page

    def _read(self, data: bytes, tess_lang: str) -> Page:
        gray = decode_page(data)
        api = self._api(tess_lang)
        api.SetImageBytes(gray.tobytes(), gray.width, gray.height, 1, gray.width)
        try:
            api.Recognize()
            return Page(gray.width, gray.height, _blocks(api))
        finally:
            api.Clear()

    def _api(self, tess_lang: str) -> tesserocr.PyTessBaseAPI:
        apis: dict[str, Any] | None = getattr(self._local, "apis", None)
        if apis is None:
            apis = self._local.apis = {}
        api = apis.get(tess_lang)
        if api is None:
            api = apis[tess_lang] = _new_api(tess_lang)
            with self._apis_lock:
                self._apis.append(api)
        return api

    def stats_json(self) -> dict[str, Any]:
        return {
            "threads": self.threads,
            "pages_read": self.pages_read,
            "cache_hits": self.cache_hits,
            "seconds": round(self.seconds, 6),
        }

    def reset_counters(self) -> None:
        self.pages_read = self.cache_hits = 0
        self.seconds = 0.0

    def close(self) -> None:
        """Wait for running reads, then free every engine (blocking: call off the loop)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._apis_lock:
            apis, self._apis = self._apis, []
        for api in apis:
            api.End()


def _new_api(tess_lang: str) -> tesserocr.PyTessBaseAPI:
    # For a libtesseract built with OpenMP: one thread per engine. OpenMP reads it when it loads,
    # so it only counts if tesserocr is first imported here; the PyPI wheel has no OpenMP anyway.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    try:
        import tesserocr
    except ImportError as exc:  # pragma: no cover - tesserocr is a dependency
        raise OcrUnavailable(f"tesserocr is not installed ({exc})") from exc
    folder = find_tessdata(tess_lang)
    if folder is None:
        raise OcrUnavailable(f"no {tess_lang}.traineddata found (set TESSDATA_PREFIX)")
    try:
        return tesserocr.PyTessBaseAPI(
            path=str(folder) + os.sep, lang=tess_lang, psm=tesserocr.PSM.AUTO, oem=tesserocr.OEM.LSTM_ONLY
        )
    except RuntimeError as exc:
        raise OcrUnavailable(f"Tesseract could not load {tess_lang} from {folder}: {exc}") from exc


def _blocks(api: tesserocr.PyTessBaseAPI) -> tuple[tuple[Line, ...], ...]:
    """Walk the result word by word, grouping words into lines and lines into blocks."""
    import tesserocr

    ril = tesserocr.RIL
    it = api.GetIterator()
    if it is None:  # nothing recognised
        return ()
    blocks: list[list[list[Word]]] = []
    while True:
        if not blocks or it.IsAtBeginningOf(ril.BLOCK):
            blocks.append([[]])
        elif it.IsAtBeginningOf(ril.TEXTLINE):
            blocks[-1].append([])
        try:
            text = (it.GetUTF8Text(ril.WORD) or "").strip()
        except RuntimeError:  # "No text returned": an empty page or a non-text block
            text = ""
        bbox = it.BoundingBox(ril.WORD) if text else None
        if bbox is not None:
            confidence = max(0.0, min(100.0, float(it.Confidence(ril.WORD)))) / 100
            blocks[-1][-1].append(Word(text, Box(*(int(v) for v in bbox)), round(confidence, 3)))
        if not it.Next(ril.WORD):
            break
    lines = ([_line(words) for words in block if words] for block in blocks)
    return tuple(tuple(block) for block in lines if block)


def _line(words: list[Word]) -> Line:
    """A line of words; its box is the union of theirs."""
    box = Box(
        min(w.box.left for w in words),
        min(w.box.top for w in words),
        max(w.box.right for w in words),
        max(w.box.bottom for w in words),
    )
    return Line(tuple(words), box)
