"""The estimate's one pass over the manifest: each row planned as the run plans it
(:class:`batch.plan.Planner`), its requests' tokens summed.

:class:`Scan` keeps running sums per detail level and per what-if scenario; nothing in it grows
with the number of rows. Turning the sums into costs and times is :mod:`batch.estimate`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..core import DETAILS, ImageError, JobSpec, ModelInfo, Price, PriceTable, WorkItem, lookup_model
from ..inputs import MAX_BYTES, load_image
from ..plan import Planner, Refusal, RequestPlan, format_tokens, label_tokens
from ..tokens import chat_prompt_tokens, image_tokens
from .hint import DEFAULT_OCR_SAMPLE, HintEstimate, HintSampler
from .model import DEFAULT_COMPARE, DETAIL_MODES, SkippedRow
from .shards import LINE_FRAMING_BYTES
from .video import VideoSums

__all__ = ["Scan", "Sums", "PricedModel", "compare_targets"]

_MAX_EXAMPLES = 5
_COMPARE_COUNT = 3


@dataclass(frozen=True, slots=True)
class PricedModel:
    """A model the estimate costs: its catalogue entry and its price (``send.Target`` is an endpoint)."""

    name: str  # as given (e.g. gpt-4o-2024-05-13): the price may depend on the date
    info: ModelInfo
    price: Price

    @classmethod
    def resolve(cls, name: str, table: PriceTable, catalogue: Path | None = None) -> PricedModel:
        return cls(name.strip().lower(), lookup_model(name, catalogue), table.price_for(name))


def compare_targets(
    main: PricedModel, names: Sequence[str] | None, table: PriceTable, catalogue: Path | None = None
) -> list[PricedModel]:
    explicit = names is not None
    out: list[PricedModel] = []
    seen = {(main.info.name, main.price.name)}
    for name in names if names is not None else DEFAULT_COMPARE:
        target = PricedModel.resolve(name, table, catalogue)
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
    main: PricedModel
    targets: list[PricedModel]
    detail_override: str | None
    remote_size: tuple[int, int]
    verify: bool = True  # walk local images' structure like the run (False: headers only)
    ocr_sample: int = DEFAULT_OCR_SAMPLE  # hinted requests read to measure the OCR hint
    planner: Planner = field(init=False)
    hints: HintSampler = field(init=False)
    tokenizers: tuple[str, ...] = field(init=False)
    rows_read: int = 0
    by_detail: dict[str, Sums] = field(default_factory=dict)
    # (target index, detail mode) -> image tokens; text tokens depend only on the tokenizer
    grid_images: dict[tuple[int, str], int] = field(default_factory=dict)
    text_by_tokenizer: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(
        default_factory=lambda: {"local": 0, "inline": 0, "remote": 0, "oversize": 0, "checked": 0}
    )
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[SkippedRow] = field(default_factory=list)
    video: VideoSums = field(default_factory=VideoSums)
    request_bytes: int = 0  # the Batch route's lines, estimated (see ``shards``)

    def __post_init__(self) -> None:
        # The run's own request plan: same rules, same base folder, same outside-path rule.
        self.planner = Planner(
            self.spec, self.main.info, detail_override=self.detail_override, remote_size=self.remote_size
        )
        self.hints = HintSampler(self.spec, self.main.info.tokenizer, self.ocr_sample)
        self.tokenizers = tuple(dict.fromkeys(t.info.tokenizer for t in self.targets))
        self.text_by_tokenizer = dict.fromkeys(self.tokenizers, 0)
        self.grid_images = {(i, mode): 0 for i in range(len(self.targets)) for mode in DETAIL_MODES}

    def add(self, item: WorkItem) -> None:
        self.rows_read += 1
        plan = self.planner.plan(item)
        if isinstance(plan, Refusal):
            self._skip(item, plan.code, plan.message)
            return
        if plan.source == "image" and self.verify and not self._whole(item, plan.path, plan.file_bytes):
            return
        self.hints.add(plan)
        kind = {"remote": "remote", "inline": "inline"}.get(plan.source, "local")
        self.sources[kind] += 1
        if plan.source == "image" and (plan.file_bytes or 0) > MAX_BYTES:
            self.sources["oversize"] += 1
        requests = len(plan.requests)
        main_tokenizer = self.main.info.tokenizer
        # Every request repeats the prompt; an OCR hint is added after the pass (see .hint).
        texts = {
            tok: plan.text_tokens
            if tok == main_tokenizer
            else (
                chat_prompt_tokens(self.spec.prompt.system, plan.user_text, tok)
                + format_tokens(self.spec.output.format, tok)
            )
            * requests
            + sum(label_tokens(list(r.images), tok) for r in plan.requests)  # a video's frame times
            for tok in self.tokenizers
        }
        for tok, n in texts.items():
            self.text_by_tokenizer[tok] += n
        sizes = [im.size for r in plan.requests for im in r.images]
        for i, target in enumerate(self.targets):
            per_detail = {d: sum(_image_tokens(target.info, w, h, d) for w, h in sizes) for d in DETAILS}
            for mode in DETAIL_MODES:
                self.grid_images[i, mode] += per_detail[plan.detail if mode == "job" else mode]
        sums = self.by_detail.setdefault(plan.detail, Sums())
        sums.rows += 1
        sums.requests += requests
        sums.images += len(sizes)
        sums.image_tokens += plan.image_tokens
        sums.text_tokens += texts[main_tokenizer]
        sums.max_completion += plan.max_tokens * requests
        self.request_bytes += _request_bytes(plan, len(self.spec.prompt.system), requests)
        if plan.source == "video":
            self.video.add(plan)

    def add_measured_hints(self) -> HintEstimate | None:
        """After the pass: the OCR hint measured on the sample, added to the text tokens."""
        hint = self.hints.measure()
        if hint is not None and hint.tokens:
            for detail, n in self.hints.by_detail.items():
                self.by_detail[detail].text_tokens += round(hint.mean_tokens * n)
            for tok in self.text_by_tokenizer:  # other tokenizers: the main one's count stands in
                self.text_by_tokenizer[tok] += hint.tokens
        return hint

    def _whole(self, item: WorkItem, path: Path | None, size: int | None) -> bool:
        """The run's quick check (``[input].verify_images = "quick"``) on a file it sends as it is
        (PNG, JPEG or WebP within the byte limit): its structure walked, no pixel decoded unless the
        walk finds it short. A file the run would re-encode is decoded by the run: judged by header here."""
        if path is None or (size or 0) > MAX_BYTES or not _sent_as_is(path):
            return True
        try:
            load_image(path, verify="quick")
        except ImageError as exc:
            self._skip(item, exc.code, str(exc))
            return False
        self.sources["checked"] += 1
        return True

    def _skip(self, item: WorkItem, code: str, message: str) -> None:
        self.skipped[code] = self.skipped.get(code, 0) + 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(SkippedRow(item.id, code, message))


def _sent_as_is(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _request_bytes(plan: RequestPlan, system_chars: int, requests: int) -> int:
    """The plan's lines as the Batch route writes them: base64 grows a file by 4/3."""
    image = len(plan.ref) if plan.source in ("remote", "inline") else math.ceil((plan.file_bytes or 0) * 4 / 3)
    return image + requests * (LINE_FRAMING_BYTES + system_chars + len(plan.user_text.encode()))


@lru_cache(maxsize=65536)
def _image_tokens(model: ModelInfo, width: int, height: int, detail: str) -> int:
    # Archives hold many images of the same few sizes: the cache saves recomputing the scaling.
    return image_tokens(model, width, height, detail)
