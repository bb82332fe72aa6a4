"""The estimate's one pass over the manifest: each row checked, its image probed, its tokens summed.

:class:`Scan` keeps running sums per detail level and per what-if scenario; nothing in it grows
with the number of rows. Turning the sums into costs and times is :mod:`batch.estimate`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from ..core import DETAILS, ImageError, JobSpec, ModelInfo, Price, PriceTable, RowError, WorkItem, lookup_model
from ..inputs import (
    MAX_BYTES,
    data_url_size,
    is_document,
    page_count,
    page_sizes,
    parse_pages,
    probe_image,
    webp_header_size,
)
from ..plan import RequestBuilder
from ..tokens import chat_prompt_tokens, image_tokens
from .model import DEFAULT_COMPARE, DETAIL_MODES, SkippedRow

__all__ = ["Scan", "Sums", "Target", "compare_targets"]

_MAX_EXAMPLES = 5
_COMPARE_COUNT = 3


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # as given (e.g. gpt-4o-2024-05-13): the price may depend on the date
    info: ModelInfo
    price: Price

    @classmethod
    def resolve(cls, name: str, table: PriceTable) -> Target:
        return cls(name.strip().lower(), lookup_model(name), table.price_for(name))


def compare_targets(main: Target, names: Sequence[str] | None, table: PriceTable) -> list[Target]:
    explicit = names is not None
    out: list[Target] = []
    seen = {(main.info.name, main.price.name)}
    for name in names if names is not None else DEFAULT_COMPARE:
        target = Target.resolve(name, table)
        key = (target.info.name, target.price.name)
        if key not in seen:
            seen.add(key)
            out.append(target)
    return out if explicit else out[:_COMPARE_COUNT]


@dataclass(slots=True)
class Sums:
    rows: int = 0
    requests: int = 0
    images: int = 0
    image_tokens: int = 0
    text_tokens: int = 0
    max_completion: int = 0

    def add(self, other: Sums) -> None:
        self.rows += other.rows
        self.requests += other.requests
        self.images += other.images
        self.image_tokens += other.image_tokens
        self.text_tokens += other.text_tokens
        self.max_completion += other.max_completion


@dataclass(slots=True)
class Scan:
    """Running sums for one pass; nothing here grows with the number of rows."""

    spec: JobSpec
    main: Target
    targets: list[Target]
    detail_override: str | None
    remote_size: tuple[int, int]
    builder: RequestBuilder = field(init=False)
    tokenizers: tuple[str, ...] = field(init=False)
    rows_read: int = 0
    by_detail: dict[str, Sums] = field(default_factory=dict)
    # (target index, detail mode) -> image tokens; text tokens depend only on the tokenizer
    grid_images: dict[tuple[int, str], int] = field(default_factory=dict)
    text_by_tokenizer: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=lambda: {"local": 0, "inline": 0, "remote": 0, "oversize": 0})
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[SkippedRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The run's own builder resolves paths: same base folder, same outside-path rule.
        self.builder = RequestBuilder(self.spec, self.main.info, None)
        self.tokenizers = tuple(dict.fromkeys(t.info.tokenizer for t in self.targets))
        self.text_by_tokenizer = dict.fromkeys(self.tokenizers, 0)
        self.grid_images = {(i, mode): 0 for i in range(len(self.targets)) for mode in DETAIL_MODES}

    def add(self, item: WorkItem) -> None:
        self.rows_read += 1
        prompt = self.spec.prompt
        detail = self.detail_override or (item.detail if item.detail is not None else prompt.detail)
        if detail not in DETAILS:
            self._skip(item, "bad_detail", f"detail {detail!r} is not one of {', '.join(DETAILS)}")
            return
        max_out = item.max_tokens if item.max_tokens is not None else prompt.max_tokens
        if max_out < 1:
            self._skip(item, "bad_max_tokens", f"max_tokens {max_out} must be at least 1")
            return
        try:
            sizes, requests = self._image_sizes(item)
        except RowError as exc:
            self._skip(item, exc.code, str(exc))
            return
        user_text = item.prompt if item.prompt else prompt.user
        # Every request of a document repeats the prompt (an OCR hint, unknown before OCR, is not counted).
        texts = {tok: chat_prompt_tokens(prompt.system, user_text, tok) * requests for tok in self.tokenizers}
        for tok, n in texts.items():
            self.text_by_tokenizer[tok] += n
        for i, target in enumerate(self.targets):
            per_detail = {d: sum(_image_tokens(target.info, w, h, d) for w, h in sizes) for d in DETAILS}
            for mode in DETAIL_MODES:
                self.grid_images[i, mode] += per_detail[detail if mode == "job" else mode]
        sums = self.by_detail.setdefault(detail, Sums())
        sums.rows += 1
        sums.requests += requests
        sums.images += len(sizes)
        sums.image_tokens += sum(_image_tokens(self.main.info, w, h, detail) for w, h in sizes)
        sums.text_tokens += texts[self.main.info.tokenizer]
        sums.max_completion += max_out * requests

    def _image_sizes(self, item: WorkItem) -> tuple[list[tuple[int, int]], int]:
        """The sizes of the images a row sends, and in how many requests."""
        ref = (item.image or "").strip()
        if ref and not ref.startswith(("http://", "https://", "data:")):
            path = self.builder.resolve_path(ref)
            kind = is_document(path)
            if kind == "pdf" or (kind == "tiff" and page_count(path) > 1):
                sizes = page_sizes(path, parse_pages(item.pages, page_count(path)), self.spec.documents.dpi)
                self.sources["local"] += 1
                docs = self.spec.documents
                per_request = 1
                if docs.requests == "packed" and self.spec.ocr.mode != "azure-enhancements":
                    per_request = max(
                        1, min(docs.pages_per_request or self.main.info.max_images, self.main.info.max_images)
                    )
                return sizes, math.ceil(len(sizes) / per_request)
        return [self._image_size(item.image)], 1

    def _image_size(self, image: str | None) -> tuple[int, int]:
        ref = (image or "").strip()
        if not ref:
            raise ImageError("the row has no image", code="image_missing")
        if ref.startswith(("http://", "https://")):
            self.sources["remote"] += 1
            return self.remote_size
        if ref.startswith("data:"):
            size = data_url_size(ref)
            self.sources["inline"] += 1
            return size
        path = self.builder.resolve_path(ref)
        dims = webp_header_size(path) if path.suffix.lower() == ".webp" else None
        if dims is None:
            info = probe_image(path)
            dims = info.width, info.height
        self.sources["local"] += 1
        try:
            if path.stat().st_size > MAX_BYTES:
                self.sources["oversize"] += 1
        except OSError:
            pass  # the file was just read; one vanishing now changes nothing here
        return dims

    def _skip(self, item: WorkItem, code: str, message: str) -> None:
        self.skipped[code] = self.skipped.get(code, 0) + 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(SkippedRow(item.id, code, message))


@lru_cache(maxsize=65536)
def _image_tokens(model: ModelInfo, width: int, height: int, detail: str) -> int:
    # Archives hold many images of the same few sizes: the cache saves recomputing the scaling.
    return image_tokens(model, width, height, detail)
