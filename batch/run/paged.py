"""Rows that take more than a plain image request: documents and OCR-assisted rows.

A row goes this way when its file is a PDF or a multi-page TIFF, or when its OCR mode (the
job's ``[ocr].mode``, or the row's ``ocr`` column) is not ``off``. Its pages are rendered one
request at a time (memory holds one request's pages, however long the document) on a thread
pool, grouped into requests (one page each, or as many as the model's image limit allows when
the job packs them; always one with the legacy enhancements, which take a single image), read
by OCR when asked, and sent through the runner's ``send`` (pacing, retries, byte budget). The
parts' outcomes are then merged into the row's one :class:`~batch.records.Outcome`
(:func:`merge_parts`): the result keeps one row per manifest row, with ``page_answers`` holding
each request's answer.

A part that ends in an error ends the row there: later pages are not sent (the row is an error
row either way, and the pages already answered stay in ``page_answers``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from ..core import (
    OCR_MODES,
    Answer,
    Failure,
    GroundingLine,
    JobSpec,
    ModelInfo,
    OcrMode,
    Outcome,
    Pages,
    PartAnswer,
    RowError,
    Sent,
    Status,
    Usage,
    WorkItem,
)
from ..inputs import is_document, load_image, page_count, parse_pages, render_pages, to_data_url
from ..ocr import LocalOcrPool, format_ocr_hint
from ..plan import ImageRef, PreparedRequest, RequestBuilder, RowPlan, data_url_size
from ..send import AzureRead, RetryPolicy

__all__ = ["Page", "PagedRows", "PartResult", "merge_parts"]

Send = Callable[[PreparedRequest, str | None], Awaitable[Outcome | None]]


@dataclass(frozen=True, slots=True)
class Page:
    """One image a request carries. ``number`` is the 1-based document page (None for an image row);
    ``data`` the encoded bytes (None for an http(s) image, which is never downloaded)."""

    number: int | None
    ref: ImageRef
    data: bytes | None
    image: Image.Image | None
    note: str | None = None
    ocr_text: str | None = None


@dataclass(frozen=True, slots=True)
class PartResult:
    """One request's outcome, with its pages and what OCR read on each (page None: an image row)."""

    pages: tuple[int, ...]
    outcome: Outcome
    ocr: tuple[tuple[int | None, str], ...] = ()


class PagedRows:
    """Decides which rows go page by page, and processes them."""

    def __init__(
        self,
        spec: JobSpec,
        model: ModelInfo,
        builder: RequestBuilder,
        executor: Executor,
        *,
        extensions_url: str | None,
        vision_key: str | None,
        azure_read: AzureRead | None,
    ) -> None:
        self.spec = spec
        self.model = model
        self.builder = builder
        self.executor = executor
        self.extensions_url = extensions_url
        self._vision_key = vision_key
        self.azure_read = azure_read
        self._local: LocalOcrPool | None = None

    @classmethod
    def for_run(
        cls,
        spec: JobSpec,
        model: ModelInfo,
        builder: RequestBuilder,
        session: aiohttp.ClientSession,
        *,
        extensions_url: str | None,
        vision_key: str | None,
        policy: RetryPolicy,
        rng: random.Random,
    ) -> PagedRows:
        """Rendering and local OCR on one thread per core (CPU-bound work); the azure-read client
        when a Vision resource is configured. ``close`` ends the threads and OCR engines."""
        ocr = spec.ocr
        azure_read = None
        if ocr.vision_endpoint is not None and vision_key is not None:
            azure_read = AzureRead(
                session,
                ocr.vision_endpoint,
                vision_key,
                api_version=ocr.read_api_version,
                language=ocr.language,
                per_second=ocr.read_tps,
                policy=policy,
                timeout_s=spec.endpoint.timeout_s,
                rng=rng,
            )
        pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="batch-pages")
        return cls(
            spec,
            model,
            builder,
            pool,
            extensions_url=extensions_url,
            vision_key=vision_key,
            azure_read=azure_read,
        )

    def __repr__(self) -> str:
        return f"PagedRows(mode={self.spec.ocr.mode!r}, vision_key=<redacted>)"

    def mode_for(self, item: WorkItem) -> OcrMode:
        """The row's OCR mode: its ``ocr`` column when set, else the job's."""
        raw = (item.ocr or "").strip().lower()
        if not raw:
            return self.spec.ocr.mode
        for mode in OCR_MODES:
            if raw == mode:
                return mode
        raise RowError(f"ocr {item.ocr!r} is not one of {', '.join(OCR_MODES)}", code="bad_ocr")

    def is_document(self, item: WorkItem) -> bool:
        """True for a local PDF, or a TIFF of more than one page (a one-page TIFF is an image)."""
        ref = (item.image or "").strip()
        if not ref or ref.startswith(("http://", "https://", "data:")):
            return False
        path = self.builder.resolve_path(ref)
        kind = is_document(path)
        return kind == "pdf" or (kind == "tiff" and page_count(path) > 1)

    def close(self) -> None:
        if isinstance(self.executor, ThreadPoolExecutor):
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self._local is not None:
            self._local.close()

    # ---- one row ------------------------------------------------------------------------------

    async def process(self, item: WorkItem, mode: OcrMode, send: Send) -> Outcome | None:
        """Every request of one row, then the merged outcome (None: the run is stopping)."""
        started = time.monotonic()
        plan = self.builder.plan(item)
        self._check_mode(mode)
        loop = asyncio.get_running_loop()
        groups = await loop.run_in_executor(self.executor, self._groups, item, mode)
        parts: list[PartResult] = []
        while True:
            group = await loop.run_in_executor(self.executor, next, groups, None)
            if group is None:
                break
            if mode == "azure-read":
                group = [await self._read_azure(p) for p in group]
            req = await loop.run_in_executor(self.executor, self._compose, plan, group, mode)
            outcome = await send(req, self.extensions_url if mode == "azure-enhancements" else None)
            if outcome is None:
                return None
            pages = tuple(p.number for p in group if p.number is not None)
            ocr = tuple((p.number, p.ocr_text) for p in group if p.ocr_text is not None)
            parts.append(PartResult(pages, outcome, ocr))
            if outcome.status == "error":
                break
        return merge_parts(item.index, parts, plan.detail, started=started, document=_is_document_row(parts))

    def _check_mode(self, mode: OcrMode) -> None:
        if mode == "azure-enhancements":
            if self.extensions_url is None or not self.model.supports_enhancements:
                raise RowError(
                    f"ocr 'azure-enhancements' needs a classic Azure deployment of gpt-4 vision-preview; "
                    f"this job's model is {self.model.name!r} at a {self.spec.endpoint.kind!r} endpoint",
                    code="ocr_unsupported",
                )
            if self._vision_key is None:
                raise RowError(self._unconfigured("azure-enhancements"), code="ocr_unconfigured")
        elif mode == "azure-read" and self.azure_read is None:
            raise RowError(self._unconfigured("azure-read"), code="ocr_unconfigured")

    def _unconfigured(self, mode: str) -> str:
        return (
            f"ocr {mode!r} needs an Azure AI Vision resource: set [ocr].vision_endpoint (or AZURE_VISION_ENDPOINT) "
            f"and its key in ${self.spec.ocr.vision_key_env}"
        )

    # ---- pages (worker threads) ---------------------------------------------------------------

    def _groups(self, item: WorkItem, mode: OcrMode) -> Iterator[list[Page]]:
        """Check the row's file and pages now (errors belong to the row), then yield request groups."""
        ref = (item.image or "").strip()
        if not ref:
            raise RowError("the row has no image", code="image_missing")
        per_request = self._per_request(mode)
        if ref.startswith(("http://", "https://", "data:")) or not self.is_document(item):
            return iter([[self._with_local_ocr(self._image_page(ref), mode)]])
        path = self.builder.resolve_path(ref)
        numbers = parse_pages(item.pages, page_count(path))
        if len(numbers) > self.spec.documents.max_pages:
            raise RowError(
                f"{len(numbers)} pages selected, over [documents].max_pages = {self.spec.documents.max_pages}; "
                "select pages with the row's pages column or raise the limit",
                code="document_too_long",
            )
        return self._document_groups(path, numbers, per_request, mode)

    def _document_groups(self, path: Path, numbers: list[int], per_request: int, mode: OcrMode) -> Iterator[list[Page]]:
        group: list[Page] = []
        for rp in render_pages(path, numbers, self.spec.documents.dpi):
            url = f"data:{rp.mime};base64,{base64.b64encode(rp.data).decode('ascii')}"
            page = Page(rp.page, ImageRef(url, (rp.width, rp.height)), rp.data, rp.image, rp.note)
            group.append(self._with_local_ocr(page, mode))
            if len(group) == per_request:
                yield group
                group = []
        if group:
            yield group

    def _per_request(self, mode: OcrMode) -> int:
        if mode == "azure-enhancements" or self.spec.documents.requests == "per-page":
            return 1
        wanted = self.spec.documents.pages_per_request or self.model.max_images
        return max(1, min(wanted, self.model.max_images))

    def _image_page(self, ref: str) -> Page:
        if ref.startswith(("http://", "https://")):
            return Page(None, ImageRef(ref, (1024, 1024)), None, None)
        if ref.startswith("data:"):
            return Page(None, ImageRef(ref, data_url_size(ref)), _data_url_bytes(ref), None)
        img = load_image(self.builder.resolve_path(ref), verify=self.spec.input.verify_images)
        return Page(None, ImageRef(to_data_url(img), (img.width, img.height)), img.data, None, img.reencoded)

    def _with_local_ocr(self, page: Page, mode: OcrMode) -> Page:
        if mode != "local":
            return page
        image: Image.Image | bytes | None = page.image if page.image is not None else page.data
        if image is None:
            raise RowError(
                "local OCR needs the image's pixels; http(s) images are not downloaded", code="ocr_unavailable"
            )
        if self._local is None:
            self._local = LocalOcrPool(self.spec.ocr.language)
        text = self._local.read(image)
        return Page(page.number, page.ref, page.data, None, page.note, text)

    async def _read_azure(self, page: Page) -> Page:
        assert self.azure_read is not None
        # An http(s) image is passed to the service by URL, as the chat request passes it.
        source = page.data if page.data is not None else page.ref.url
        text = await self.azure_read.read(source)
        return Page(page.number, page.ref, page.data, None, page.note, text)

    def _compose(self, plan: RowPlan, group: list[Page], mode: OcrMode) -> PreparedRequest:
        extra_text = None
        if mode in ("local", "azure-read") and self.spec.ocr.hint:
            source = "tesseract" if mode == "local" else "azure-read"
            extra_text = "\n\n".join(format_ocr_hint(p.ocr_text or "", source=source, page=p.number) for p in group)
        extra_body: dict[str, Any] | None = None
        if mode == "azure-enhancements":
            extra_body = {
                "enhancements": {"ocr": {"enabled": True}, "grounding": {"enabled": self.spec.ocr.grounding}},
                "dataSources": [
                    {
                        "type": "AzureComputerVision",
                        "parameters": {"endpoint": self.spec.ocr.vision_endpoint, "key": self._vision_key},
                    }
                ],
            }
        notes = "; ".join(dict.fromkeys(p.note for p in group if p.note)) or None
        return self.builder.compose(
            plan, [p.ref for p in group], extra_text=extra_text, extra_body=extra_body, note=notes
        )


# ---- merging ------------------------------------------------------------------------------------


def merge_parts(index: int, parts: list[PartResult], detail: str, *, started: float, document: bool) -> Outcome:
    """One row's outcome from its requests' outcomes (see ``schemas/result.schema.json``)."""
    outs = [p.outcome for p in parts]
    failed = next((p for p in parts if p.outcome.status == "error"), None)
    status: Status = "error" if failed else ("filtered" if any(o.status == "filtered" for o in outs) else "ok")
    if not document and len(parts) == 1:
        only = parts[0]
        text, ocr_text, pages = _text(only.outcome), _ocr_text(only.ocr), None
    else:
        text = _join(parts, lambda p: _text(p.outcome))
        ocr_text = _ocr_text(tuple(page for p in parts for page in p.ocr))
        processed = tuple(n for p in parts if p.outcome.status != "error" for n in p.pages)
        pages = Pages(processed, tuple(_part_answer(p) for p in parts))
    error = None
    if failed is not None and failed.outcome.error is not None:
        where = f"page {_label(failed.pages)}: " if failed.pages else ""
        e = failed.outcome.error
        error = Failure(e.code, f"{where}{e.message}" if e.message else None)
    sents = [o.sent for o in outs if o.sent is not None]
    return Outcome(
        index,
        status,
        answer=_merged_answer(text, outs),
        error=error,
        sent=Sent(
            detail,
            _sum(s.image_tokens for s in sents),
            _sum(s.prompt_tokens for s in sents),
            "; ".join(dict.fromkeys(s.image_note for s in sents if s.image_note)) or None,
        ),
        pages=pages,
        ocr_text=ocr_text,
        grounding=_grounding(parts, document),
        attempts=sum(o.attempts for o in outs),
        latency_ms=(time.monotonic() - started) * 1000,
        request_id=outs[-1].request_id if outs else None,
    )


def _merged_answer(text: str | None, outs: list[Outcome]) -> Answer | None:
    answers = [o.answer for o in outs if o.answer is not None]
    if not answers:
        return None
    reasons = [a.finish_reason for a in answers if a.finish_reason is not None]
    usages = [a.usage for a in answers if a.usage is not None]
    usage = None
    if usages:
        usage = Usage(
            sum(u.prompt_tokens for u in usages),
            sum(u.completion_tokens for u in usages),
            sum(u.total_tokens for u in usages),
        )
    return Answer(
        text,
        next((r for r in reasons if r != "stop"), reasons[0] if reasons else None),
        usage,
        next((a.model for a in answers if a.model), None),
    )


def _grounding(parts: list[PartResult], document: bool) -> tuple[GroundingLine, ...] | None:
    """Every request's grounded lines, each tagged with its page in a document."""
    lines = tuple(
        replace(line, page=p.pages[0] if document and p.pages else None)
        for p in parts
        if p.outcome.grounding is not None
        for line in p.outcome.grounding
    )
    return lines if any(p.outcome.grounding is not None for p in parts) else None


def _text(o: Outcome) -> str | None:
    return o.answer.text if o.answer is not None else None


def _part_answer(p: PartResult) -> PartAnswer:
    o = p.outcome
    usage = o.usage
    return PartAnswer(
        pages=p.pages,
        status=o.status,
        answer=_text(o),
        finish_reason=o.answer.finish_reason if o.answer is not None else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        request_id=o.request_id,
        ocr_text=_ocr_text(p.ocr, headers=len(p.ocr) > 1),
        error_code=o.error_code,
    )


def _is_document_row(parts: list[PartResult]) -> bool:
    return any(p.pages for p in parts)


def _join(parts: list[PartResult], get: Callable[[PartResult], str | None]) -> str | None:
    chunks = [(p.pages, text) for p in parts if (text := get(p)) is not None]
    if not chunks:
        return None
    return "\n\n".join(f"--- page {_label(pages)} ---\n{text}" if pages else text for pages, text in chunks)


def _ocr_text(texts: tuple[tuple[int | None, str], ...], *, headers: bool = True) -> str | None:
    """Pages' OCR text under page headers; a lone image's (or a lone page's, without headers) as it is."""
    if not texts:
        return None
    if len(texts) == 1 and (texts[0][0] is None or not headers):
        return texts[0][1]
    return "\n\n".join(f"--- page {n} ---\n{t}" for n, t in texts)


def _label(pages: tuple[int, ...]) -> str:
    if len(pages) == 1:
        return str(pages[0])
    if list(pages) == list(range(pages[0], pages[-1] + 1)):
        return f"{pages[0]}-{pages[-1]}"
    return ",".join(str(n) for n in pages)


def _sum(values: Iterator[int | None] | Any) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _data_url_bytes(url: str) -> bytes:
    data_url_size(url)  # the same checks and errors as an image row's data URL
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError, IndexError):
        raise RowError("data URL holds invalid base64", code="bad_data_url") from None
