"""A row's plan made real, one request at a time, for the runner to send.

:meth:`RowRequests.start` plans the row (:class:`~batch.plan.Planner`); a refused row raises its
RowError. :meth:`RowRequests.next_part` then loads (or renders) the next planned request's pages,
reads them by OCR when the row asks (local Tesseract on a thread, or azure-read), and composes
its body. Memory holds one request's pages, however long the document. A plain image row (no OCR)
is planned, loaded and composed in one thread hop; documents and OCR work run on a pool of one
thread per core (CPU-bound rendering and recognition).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Generator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import aiohttp
from PIL import Image

from ..core import JobSpec, ModelInfo, RowError, WorkItem
from ..ocr import LocalOcrPool, format_ocr_hint
from ..plan import Page, Planner, PreparedRequest, Refusal, RequestBuilder, RequestPlan, load_requests
from ..send import AzureRead, RetryPolicy

__all__ = ["PreparedPart", "RowParts", "RowRequests"]


@dataclass(frozen=True, slots=True)
class PreparedPart:
    """One request ready to send, with its document pages and what OCR read on each."""

    request: PreparedRequest
    pages: tuple[int, ...]
    ocr: tuple[tuple[int | None, str], ...]


class RowParts:
    """One row on its way: its plan, its pages still to load, and a first request made ahead."""

    def __init__(self, plan: RequestPlan, pages: Generator[list[Page], None, None], url: str | None) -> None:
        self.plan = plan
        self.url = url  # the legacy enhancements' extensions URL, else None (the chat URL)
        self.pages = pages
        self.left = len(plan.requests)
        self.ready: PreparedPart | None = None

    @property
    def single(self) -> bool:
        """An image row without OCR: its one request's outcome is the row's, unmerged."""
        return self.plan.ocr == "off" and not self.plan.is_document

    def close(self) -> None:
        """A document left early is closed now, not when collected; not while a worker thread is
        still in it (the run is being cancelled: the thread ends on its own)."""
        with suppress(ValueError):  # "generator already executing"
            self.pages.close()


class RowRequests:
    """Turns rows into requests for one run."""

    def __init__(
        self,
        spec: JobSpec,
        planner: Planner,
        builder: RequestBuilder,
        executor: Executor,
        *,
        extensions_url: str | None,
        vision_key: str | None,
        azure_read: AzureRead | None,
    ) -> None:
        self.spec = spec
        self.planner = planner
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
        planner: Planner,
        builder: RequestBuilder,
        session: aiohttp.ClientSession,
        *,
        extensions_url: str | None,
        vision_key: str | None,
        policy: RetryPolicy,
        rng: random.Random,
    ) -> RowRequests:
        """Rendering and local OCR on one thread per core; the azure-read client when a Vision
        resource is configured. ``close`` ends the threads and OCR engines."""
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
            spec, planner, builder, pool, extensions_url=extensions_url, vision_key=vision_key, azure_read=azure_read
        )

    def sharing(self, planner: Planner, builder: RequestBuilder, *, extensions_url: str | None) -> RowRequests:
        """The rows of another deployment (its model's planner and builder, its URL), on the same
        threads and Read client."""
        return RowRequests(
            self.spec,
            planner,
            builder,
            self.executor,
            extensions_url=extensions_url,
            vision_key=self._vision_key,
            azure_read=self.azure_read,
        )

    def __repr__(self) -> str:
        return f"RowRequests(mode={self.spec.ocr.mode!r}, vision_key=<redacted>)"

    def close(self) -> None:
        if isinstance(self.executor, ThreadPoolExecutor):
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self._local is not None:
            self._local.close()

    async def start(self, item: WorkItem) -> RowParts:
        """The row planned (RowError if refused); a plain image row's request already made."""
        return await asyncio.to_thread(self._start, item)

    async def next_part(self, row: RowParts) -> PreparedPart | None:
        """The row's next request, ready to send; None when all are made."""
        if row.ready is not None:
            part, row.ready = row.ready, None
            return part
        if row.left == 0:
            return None
        loop = asyncio.get_running_loop()
        if row.plan.ocr != "azure-read":
            return await loop.run_in_executor(self.executor, self._prepare, row)
        pages = await loop.run_in_executor(self.executor, self._load, row)
        read = []
        for page in pages:
            # An http(s) image is passed to the service by URL, as the chat request passes it.
            assert self.azure_read is not None
            read.append(page.read_as(await self.azure_read.read(page.data if page.data is not None else page.ref.url)))
        request = await loop.run_in_executor(self.executor, self._compose, row.plan, read)
        return _part(request, read)

    # ---- worker threads -----------------------------------------------------------------------

    def _start(self, item: WorkItem) -> RowParts:
        plan, data = self.planner.plan_and_read(item)  # an image file opened once, for plan and load
        if isinstance(plan, Refusal):
            raise plan.error()
        url = self.extensions_url if plan.ocr == "azure-enhancements" else None
        row = RowParts(plan, load_requests(plan, self.spec, data), url)
        if row.single:
            row.ready = self._prepare(row)
        return row

    def _prepare(self, row: RowParts) -> PreparedPart:
        pages = self._load(row)
        return _part(self._compose(row.plan, pages), pages)

    def _load(self, row: RowParts) -> list[Page]:
        pages = next(row.pages)
        row.left -= 1
        if row.plan.ocr != "local":
            return pages
        return [page.read_as(self._read_local(page)) for page in pages]

    def _read_local(self, page: Page) -> str:
        image: Image.Image | bytes | None = page.image if page.image is not None else page.data
        if image is None:  # the plan refuses local OCR of an http(s) image: cannot happen
            raise RowError("local OCR needs the image's pixels", code="ocr_unavailable")
        if self._local is None:
            self._local = LocalOcrPool(self.spec.ocr.language)
        return self._local.read(image)

    def _compose(self, plan: RequestPlan, pages: list[Page]) -> PreparedRequest:
        extra_text = None
        if plan.hint:
            source = "tesseract" if plan.ocr == "local" else "azure-read"
            extra_text = "\n\n".join(format_ocr_hint(p.ocr_text or "", source=source, page=p.number) for p in pages)
        extra_body: dict[str, Any] | None = None
        if plan.ocr == "azure-enhancements":
            extra_body = {
                "enhancements": {"ocr": {"enabled": True}, "grounding": {"enabled": self.spec.ocr.grounding}},
                "dataSources": [
                    {
                        "type": "AzureComputerVision",
                        "parameters": {"endpoint": self.spec.ocr.vision_endpoint, "key": self._vision_key},
                    }
                ],
            }
        notes = "; ".join(dict.fromkeys(p.note for p in pages if p.note)) or None
        return self.builder.compose(
            plan, [p.ref for p in pages], extra_text=extra_text, extra_body=extra_body, note=notes
        )


def _part(request: PreparedRequest, pages: list[Page]) -> PreparedPart:
    numbers = tuple(p.number for p in pages if p.number is not None)
    return PreparedPart(request, numbers, tuple((p.number, p.ocr_text) for p in pages if p.ocr_text is not None))
