"""OCR for a row's pages, by whichever engine the row's mode names.

- ``local``: Tesseract in-process (:class:`~batch.ocr.LocalOcr`), one engine per worker thread
  (an engine is not re-entrant, and each thread reads in parallel: Tesseract releases the GIL).
- ``azure-read``: Azure AI Vision Image Analysis 4.0 ``read`` (synchronous): one POST of the
  page's bytes per page, paced to the resource's calls per second and retried like chat calls
  (429s honour ``retry-after``; 5xx, timeouts and resets back off with jitter). The key travels
  only in the ``Ocp-Apim-Subscription-Key`` header and appears in no message.

Languages are given once, as ISO 639-1 (``en``) or Tesseract codes (``eng+deu``), and translated
for each engine.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Mapping
from typing import Any

import aiohttp
from PIL import Image

from .client import post_json
from .errors import FatalApiError, PermanentApiError, RateLimitedError, RowError, SpecError, TransientApiError
from .ocr import LocalOcr
from .ratelimit_calls import CallPacer
from .retry import RetryPolicy, retry_delay, should_retry
from .spec import JobSpec

__all__ = ["AzureRead", "LocalOcrPool", "azure_language", "check_ocr_setup", "tesseract_language", "vision_key"]

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
# 429s are pacing, not a fault of the page: the same larger budget as chat calls.
MAX_THROTTLED = 50


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


class AzureRead:
    """Azure AI Vision ``imageanalysis:analyze?features=read``, paced and retried.

    :meth:`read` returns the page's text, lines in reading order. Raises
    :class:`~batch.errors.FatalApiError` (bad key, wrong endpoint, quota) for the run to stop,
    and :class:`~batch.errors.RowError` (``ocr_failed``) when the service refuses the page or
    keeps failing.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        key: str,
        *,
        api_version: str,
        language: str,
        per_second: float,
        policy: RetryPolicy,
        timeout_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.url = (
            f"{self.endpoint}/computervision/imageanalysis:analyze"
            f"?api-version={api_version}&features=read&language={azure_language(language)}"
        )
        self._session = session
        self._key = key
        self._pacer = CallPacer(per_second)
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 15.0))
        self._rng = rng or random.Random()
        self.calls = 0
        self.throttled = 0

    def __repr__(self) -> str:
        return f"AzureRead(endpoint={self.endpoint!r}, key=<redacted>)"

    async def read(self, image: bytes | str) -> str:
        """The text of ``image``: its bytes, or an http(s) URL the service downloads itself."""
        attempts = throttled = 0
        while True:
            await self._pacer.acquire()
            attempts += 1
            self.calls += 1
            try:
                return await self._once(image)
            except RateLimitedError as exc:
                throttled += 1
                self.throttled += 1
                self._pacer.on_throttle(exc.retry_after)
                if throttled >= MAX_THROTTLED:
                    raise RowError(
                        f"azure-read: gave up after {throttled} throttled calls", code="ocr_failed"
                    ) from None
            except TransientApiError as exc:
                if not should_retry(exc, attempts, self._policy):
                    raise RowError(
                        f"azure-read: gave up after {attempts} attempts; last: {exc}", code="ocr_failed"
                    ) from None
                await asyncio.sleep(retry_delay(exc, attempts, self._policy, self._rng))
            except FatalApiError:
                raise
            except PermanentApiError as exc:
                raise RowError(f"azure-read refused the page: {exc}", code="ocr_failed") from None

    async def _once(self, image: bytes | str) -> str:
        if isinstance(image, str):  # {"url": ...}: the image is never downloaded here
            body, content_type = json.dumps({"url": image}).encode(), "application/json"
        else:
            body, content_type = image, "application/octet-stream"
        headers = {"Content-Type": content_type, "Ocp-Apim-Subscription-Key": self._key}
        where = f"Azure AI Vision read at {self.endpoint}"
        doc, _headers = await post_json(self._session, self.url, body, headers, timeout=self._timeout, where=where)
        return read_result_text(doc)


def read_result_text(doc: Mapping[str, Any]) -> str:
    """The lines of a read result, block by block, one per line."""
    lines: list[str] = []
    result = doc.get("readResult")
    blocks = result.get("blocks") if isinstance(result, Mapping) else None
    for block in blocks or []:
        for line in block.get("lines") or [] if isinstance(block, Mapping) else []:
            if isinstance(line, Mapping) and isinstance(line.get("text"), str):
                lines.append(line["text"])
    return "\n".join(lines)
