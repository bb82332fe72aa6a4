"""Local OCR of a page image with Tesseract, tuned for dense numbers on financial scans.

Engine: ``tesserocr`` (libtesseract 5.5 in-process; its PyPI wheel bundles the library, so only
the language data comes from Debian's ``tesseract-ocr-eng``, found in
``/usr/share/tesseract-ocr/5/tessdata/`` or wherever ``TESSDATA_PREFIX`` points). In-process
means no subprocess and no image file per page, and the model is loaded once per engine.

What :meth:`LocalOcr.read` does to a page (each step measured on ``bench/ocr_accuracy.py``):

1. greyscale (bilevel, 16-bit, CMYK, palette and alpha images are converted; alpha on white);
2. skew: the text angle is estimated from the dark pixels (Otsu) of a copy at most 1000 px
   wide by a projection profile over -5°..5° (coarse 0.5° steps, then 0.1°);
3. upscale small print: bicubic ``upscale``× (default 2.5: on the benchmark 2.5 beat 2, 2.25,
   2.75 and 3; raw 10-14 px print is the biggest single loss), less when the text lines are
   already tall (lines are not enlarged past ``MAX_LINE_PX``, so a 300 dpi render is read as
   it is), and never past ``max_width`` pixels;
4. deskew the *enlarged* page (bilinear) if it is off by 0.1° or more: rotating 10 px print at
   its own size, then enlarging it, blurs it twice (rotation alone cost 10 px print 5% of its
   numbers), and smooth it with a box blur of 0.4 px per unit of upscale, which keeps scanner
   noise and JPEG blocks from reading as strokes (+1.3% of numbers; a Gaussian, a median,
   bilateral or diffusion filters and binarisation all did worse);
5. Tesseract in single-block mode (``PSM.SINGLE_BLOCK``: a statement is one block of table
   lines; automatic layout analysis splits columns and loses row order);
6. unless ``clean=False``, repairs that use the page's own glyphs and Tesseract's character
   boxes (measured on seeds 1000 and 9000, 120 pages, 6658 numbers; together +0.71%):

   - a digit read twice from one glyph (``8330925`` for ``833925``) dropped where that mends a
     malformed number (:func:`~batch.ocr.digits.drop_doubled_digits`; +0.08%);
   - digits checked against templates of the page's digits
     (:func:`~batch.ocr.digits.verify_digits`; Tesseract's systematic confusions in small print,
     like a dotted 0 read as 6; looser thresholds mended more but spoilt correct digits), and a
     ``$`` or ``#`` read for the first digit of a number (``$15.20``) turned into the digit it
     is typical of (+0.09%);
   - decimal points and thousands separators Tesseract dropped (``4248`` for ``42.48``) put back
     where the ink between two digits shows one (:func:`~batch.ocr.separators.restore_separators`;
     +0.2%);
   - minus signs Tesseract dropped before amounts put back where the page's own hyphen shape is
     found (:func:`~batch.ocr.minus.restore_minus_signs`); where Tesseract's box of the first
     digit is off, the spot is found again from the digit's ink: by the template (+0.05%) or as
     a lone bar in the hyphen's rows, as long as the page's hyphen, which also tells a minus read
     as ``+`` or ``»`` from a real plus sign (+0.26%);
7. :func:`~batch.ocr.hint.clean_numbers` on the text (spaces and separators inside numbers,
   letter-for-digit confusions, ``B`` for 8 only in amounts with decimals: +0.03%, lost
   thousands separators and account-number hyphens), unless ``clean=False``.

Threads: a :class:`LocalOcr` holds one Tesseract engine, which is not re-entrant: ``read`` takes a
lock, so sharing one engine between threads is safe but serial. For parallel OCR give each
worker thread its own engine (about 80 MB each): Tesseract releases the GIL while it recognises
(two threads with two engines read 1.94x as fast as one on 2 cores). ``read`` is blocking CPU
work: from asyncio call it through ``asyncio.to_thread`` or an executor.
The wheel's libtesseract is built without OpenMP, so it uses one core per engine whatever
``OMP_THREAD_LIMIT`` says (the Tesseract CLI from Debian does use OpenMP: set
``OMP_THREAD_LIMIT=1`` for it).
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..core import BatchError, RowError
from .digits import verify_digits
from .doubled import drop_doubled_digits
from .glyphs import Box
from .hint import clean_numbers, format_ocr_hint
from .minus import restore_minus_signs
from .page import DEFAULT_UPSCALE, prepare_page
from .separators import restore_separators

if TYPE_CHECKING:
    import tesserocr  # type: ignore[import-untyped]  # ships a .pyi but no py.typed marker

__all__ = ["LocalOcr", "OcrEngineUnavailable", "OcrResult", "find_tessdata", "format_ocr_hint"]

# Where Debian, Ubuntu, Fedora and Homebrew put the language data (searched in this order).
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)


class OcrEngineUnavailable(BatchError):
    """Tesseract or its language data is missing: local OCR cannot run on this machine."""


@dataclass(frozen=True, slots=True)
class OcrResult:
    """What OCR read on one page. ``seconds`` is the wall time of the whole read."""

    text: str
    lines: list[str]
    seconds: float
    confidence: float | None = None  # Tesseract's mean word confidence, 0-100
    skew_degrees: float = 0.0  # the rotation applied to straighten the page
    scale: float = 1.0
    raw_text: str = field(default="", repr=False)  # before clean-up


def find_tessdata(langs: Sequence[str], tessdata: str | os.PathLike[str] | None = None) -> Path:
    """The tessdata folder holding every language in ``langs``; raises :class:`OcrEngineUnavailable`."""
    candidates: list[Path] = []
    if tessdata is not None:
        candidates.append(Path(tessdata))
    else:
        env = os.environ.get("TESSDATA_PREFIX")
        if env:
            candidates += [Path(env), Path(env) / "tessdata"]
        candidates += [Path(d) for d in TESSDATA_DIRS]
    for folder in candidates:
        if all((folder / f"{lang}.traineddata").is_file() for lang in langs):
            return folder
    where = ", ".join(str(c) for c in candidates)
    packages = " ".join(f"tesseract-ocr-{lang}" for lang in langs)
    raise OcrEngineUnavailable(
        f"Tesseract language data for {'+'.join(langs)} not found (looked in {where}); "
        f"on Debian/Ubuntu: apt-get install {packages}, or set TESSDATA_PREFIX"
    )


class LocalOcr:
    """One Tesseract engine. ``read`` a page image (Pillow image or encoded bytes) into text.

    ``lang`` is Tesseract's language string (``"eng"``, ``"eng+deu"``); ``tessdata`` the folder
    holding ``<lang>.traineddata`` (found automatically when None). Raises
    :class:`OcrEngineUnavailable` when tesserocr or the language data is missing.
    """

    def __init__(
        self,
        lang: str = "eng",
        upscale: float = DEFAULT_UPSCALE,
        *,
        tessdata: str | os.PathLike[str] | None = None,
        deskew: bool = True,
        clean: bool = True,
        max_width: int = 5000,
    ) -> None:
        if upscale < 1.0:
            raise ValueError(f"upscale must be >= 1.0, got {upscale}")
        try:
            import tesserocr
        except ImportError as exc:  # pragma: no cover - tesserocr is a dependency
            raise OcrEngineUnavailable(f"tesserocr is not installed ({exc}): pip install tesserocr") from exc
        self.lang = lang
        self.upscale = upscale
        self.deskew = deskew
        self.clean = clean
        self.max_width = max_width
        self.tessdata = find_tessdata(lang.split("+"), tessdata)
        self._lock = threading.Lock()
        try:
            self._api: tesserocr.PyTessBaseAPI | None = tesserocr.PyTessBaseAPI(
                path=str(self.tessdata) + os.sep,
                lang=lang,
                psm=tesserocr.PSM.SINGLE_BLOCK,
                oem=tesserocr.OEM.LSTM_ONLY,
            )
        except RuntimeError as exc:
            raise OcrEngineUnavailable(f"Tesseract could not load {lang} from {self.tessdata}: {exc}") from exc
        # Upscaled scans of unknown resolution: tell Tesseract 300 dpi instead of letting it guess.
        self._api.SetVariable("user_defined_dpi", "300")

    @staticmethod
    def available(lang: str = "eng") -> str | None:
        """None when local OCR can run here, else the reason it cannot (for skipping and checks)."""
        try:
            import tesserocr  # noqa: F401
        except ImportError as exc:
            return f"tesserocr is not installed ({exc})"
        try:
            find_tessdata(lang.split("+"))
        except OcrEngineUnavailable as exc:
            return str(exc)
        return None

    def read(self, image: Image.Image | bytes) -> OcrResult:
        """OCR one page. Raises :class:`~batch.core.errors.RowError` (``ocr_failed``) if it cannot."""
        start = time.perf_counter()
        page = _as_image(image)
        prepared, skew, scale = prepare_page(page, self.upscale, deskew=self.deskew, max_width=self.max_width)
        with self._lock:
            api = self._api
            if api is None:
                raise RuntimeError("LocalOcr is closed")
            raw = _recognise(api, prepared)
            confidence = float(api.MeanTextConf())
            chars, boxes, confs = _glyphs(api) if self.clean else ([], [], [])
        if self.clean:
            pixels = np.asarray(prepared)
            chars, boxes, confs = drop_doubled_digits(chars, boxes, confs)
            chars = verify_digits(pixels, chars, boxes)
            chars, boxes, confs = restore_separators(pixels, chars, boxes, confs)
            chars = restore_minus_signs(pixels, chars, boxes, confs)
            text = clean_numbers("".join(chars))
        else:
            text = raw
        text = "\n".join(line.rstrip() for line in text.strip().splitlines())
        lines = [line for line in text.splitlines() if line.strip()]
        return OcrResult(
            text=text,
            lines=lines,
            seconds=time.perf_counter() - start,
            confidence=confidence if lines else None,
            skew_degrees=skew,
            scale=scale,
            raw_text=raw,
        )

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                self._api.End()
                self._api = None

    def __enter__(self) -> LocalOcr:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _recognise(api: tesserocr.PyTessBaseAPI, gray: Image.Image) -> str:
    # Raw 8-bit pixels: no encode/decode round trip as SetImage(PIL image) would do.
    api.SetImageBytes(gray.tobytes(), gray.width, gray.height, 1, gray.width)
    try:
        api.Recognize()
        text: str = api.GetUTF8Text()
        return text
    except RuntimeError as exc:
        raise RowError(f"Tesseract failed on the page: {exc}", code="ocr_failed") from exc


def _glyphs(api: tesserocr.PyTessBaseAPI) -> tuple[list[str], list[Box | None], list[float]]:
    """The recognised page one character at a time: characters (words separated by a space,
    lines by a newline, both with no box), their boxes in the image and Tesseract's confidence."""
    from tesserocr import RIL

    chars: list[str] = []
    boxes: list[Box | None] = []
    confs: list[float] = []
    it = api.GetIterator()
    if it is None:
        return chars, boxes, confs
    it.Begin()
    while True:
        try:
            symbol = it.GetUTF8Text(RIL.SYMBOL)
        except RuntimeError:  # "No text returned": an empty page
            symbol = None
        if symbol:
            if chars and it.IsAtBeginningOf(RIL.TEXTLINE):
                _append(chars, boxes, confs, "\n", None, 0.0)
            elif chars and it.IsAtBeginningOf(RIL.WORD):
                _append(chars, boxes, confs, " ", None, 0.0)
            box = it.BoundingBox(RIL.SYMBOL)
            conf = float(it.Confidence(RIL.SYMBOL))
            for ch in symbol:  # a symbol of several characters: each gets the symbol's box
                _append(chars, boxes, confs, ch, box, conf)
        if not it.Next(RIL.SYMBOL):
            return chars, boxes, confs


def _append(chars: list[str], boxes: list[Box | None], confs: list[float], ch: str, box: Box | None, c: float) -> None:
    chars.append(ch)
    boxes.append(box)
    confs.append(c)


def _as_image(image: Image.Image | bytes) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    try:
        im = Image.open(io.BytesIO(image))
        im.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise RowError(f"cannot OCR: the page image is not readable ({exc})", code="ocr_failed") from exc
    return im
