"""OCR set up for a run: the job's OCR mode checked, languages translated, local engines pooled.

- ``local``: Tesseract in-process (:class:`~batch.ocr.engine.LocalOcr`), one engine per worker thread
  (an engine is not re-entrant, and each thread reads in parallel: Tesseract releases the GIL).
- ``azure-read``: a network call, made by :mod:`batch.send.vision_read`; only its language is named here.

Languages are given once, as ISO 639-1 (``en``) or Tesseract codes (``eng+deu``), and translated
for each engine.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from PIL import Image

from ..core import JobSpec, SpecError
from .engine import LocalOcr

__all__ = ["LocalOcrPool", "azure_language", "check_ocr_setup", "tesseract_language", "vision_key"]

# ISO 639-1 -> Tesseract language data names (Debian: tesseract-ocr-<name>).
_TESSERACT = {
    "en": "eng",
    "de": "deu",
    "fr": "fra",
    "es": "spa",
    "it": "ita",
    "pt": "por",
    "nl": "nld",
    "pl": "pol",
    "sv": "swe",
    "da": "dan",
    "fi": "fin",
    "no": "nor",
    "cs": "ces",
    "ru": "rus",
    "ja": "jpn",
    "ko": "kor",
    "zh": "chi_sim",
    "ar": "ara",
    "tr": "tur",
}
_ISO = {v: k for k, v in _TESSERACT.items()}


def tesseract_language(language: str) -> str:
    """``en`` -> ``eng``, ``en+de`` -> ``eng+deu``; Tesseract names pass through."""
    return "+".join(_TESSERACT.get(part.lower(), part) for part in language.replace("-", "+").split("+"))


def azure_language(language: str) -> str:
    """The first language as Azure names it (``eng`` -> ``en``): read takes one language."""
    first = language.replace("-", "+").split("+")[0].lower()
    return _ISO.get(first, first)


def vision_key(spec: JobSpec, environ: Mapping[str, str]) -> str | None:
    """The Azure AI Vision key from the variable the job names (None when unset)."""
    return environ.get(spec.ocr.vision_key_env, "").strip() or None


def check_ocr_setup(spec: JobSpec, *, supports_enhancements: bool, key: str | None) -> None:
    """Refuse, before anything is sent, a job whose OCR mode cannot work (SpecError, exit 2)."""
    mode = spec.ocr.mode
    if mode == "local":
        problem = LocalOcr.available(tesseract_language(spec.ocr.language))
        if problem is not None:
            raise SpecError(f"[ocr].mode = 'local' cannot run here: {problem}")
    if mode == "azure-enhancements":
        if spec.endpoint.kind != "azure" or not supports_enhancements:
            raise SpecError(
                "[ocr].mode = 'azure-enhancements' needs a classic Azure deployment ([endpoint].kind = 'azure') of "
                f"gpt-4 vision-preview, the only model Azure gives the Vision enhancements; this job's model is "
                f"{spec.endpoint.model!r} ({spec.endpoint.kind}). Use [ocr].mode = 'local' or 'azure-read' instead"
            )
    if mode in ("azure-read", "azure-enhancements"):
        if spec.ocr.vision_endpoint is None:
            raise SpecError(
                f"[ocr].mode = {mode!r} needs an Azure AI Vision resource: set [ocr].vision_endpoint "
                "or AZURE_VISION_ENDPOINT"
            )
        if key is None:
            raise SpecError(
                f"[ocr].mode = {mode!r}: no Vision key; set the environment variable {spec.ocr.vision_key_env} "
                "(or name another one in [ocr].vision_key_env)"
            )


class LocalOcrPool:
    """One :class:`LocalOcr` per thread that asks, created on first use; ``close`` ends them all."""

    def __init__(self, language: str) -> None:
        self.lang = tesseract_language(language)
        self._local = threading.local()
        self._engines: list[LocalOcr] = []
        self._lock = threading.Lock()

    def read(self, image: Image.Image | bytes) -> str:
        engine: LocalOcr | None = getattr(self._local, "engine", None)
        if engine is None:
            engine = LocalOcr(self.lang)
            self._local.engine = engine
            with self._lock:
                self._engines.append(engine)
        return engine.read(image).text

    def close(self) -> None:
        with self._lock:
            engines, self._engines = self._engines, []
        for e in engines:
            e.close()
