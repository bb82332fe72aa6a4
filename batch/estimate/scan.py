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

from ..core import DETAILS, JobSpec, ModelInfo, Price, PriceTable, WorkItem, lookup_model
from ..inputs import MAX_BYTES
from ..plan import Planner, Refusal, RequestPlan
from ..tokens import chat_prompt_tokens, image_tokens
from .model import DEFAULT_COMPARE, DETAIL_MODES, SkippedRow
from .shards import LINE_FRAMING_BYTES

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
    planner: Planner = field(init=False)
    tokenizers: tuple[str, ...] = field(init=False)
    rows_read: int = 0
    by_detail: dict[str, Sums] = field(default_factory=dict)
    # (target index, detail mode) -> image tokens; text tokens depend only on the tokenizer
    grid_images: dict[tuple[int, str], int] = field(default_factory=dict)
    text_by_tokenizer: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=lambda: {"local": 0, "inline": 0, "remote": 0, "oversize": 0})
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[SkippedRow] = field(default_factory=list)
    request_bytes: int = 0  # the Batch route's lines, estimated (see ``shards``)

    def __post_init__(self) -> None:
        # The run's own request plan: same rules, same base folder, same outside-path rule.
        self.planner = Planner(
            self.spec, self.main.info, detail_override=self.detail_override, remote_size=self.remote_size
        )
        self.tokenizers = tuple(dict.fromkeys(t.info.tokenizer for t in self.targets))
        self.text_by_tokenizer = dict.fromkeys(self.tokenizers, 0)
        self.grid_images = {(i, mode): 0 for i in range(len(self.targets)) for mode in DETAIL_MODES}

    def add(self, item: WorkItem) -> None:
        self.rows_read += 1
        plan = self.planner.plan(item)
        if isinstance(plan, Refusal):
            self._skip(item, plan.code, plan.message)
            return
        kind = {"remote": "remote", "inline": "inline"}.get(plan.source, "local")
        self.sources[kind] += 1
        if plan.source == "image" and (plan.file_bytes or 0) > MAX_BYTES:
            self.sources["oversize"] += 1
        requests = len(plan.requests)
        main_tokenizer = self.main.info.tokenizer
        # Every request repeats the prompt (an OCR hint, unknown before OCR, is not counted).
        texts = {
            tok: plan.text_tokens
            if tok == main_tokenizer
            else chat_prompt_tokens(self.spec.prompt.system, plan.user_text, tok) * requests
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

    def _skip(self, item: WorkItem, code: str, message: str) -> None:
        self.skipped[code] = self.skipped.get(code, 0) + 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(SkippedRow(item.id, code, message))


def _request_bytes(plan: RequestPlan, system_chars: int, requests: int) -> int:
    """The plan's lines as the Batch route writes them: base64 grows a file by 4/3."""
    image = len(plan.ref) if plan.source in ("remote", "inline") else math.ceil((plan.file_bytes or 0) * 4 / 3)
    return image + requests * (LINE_FRAMING_BYTES + system_chars + len(plan.user_text.encode()))


@lru_cache(maxsize=65536)
def _image_tokens(model: ModelInfo, width: int, height: int, detail: str) -> int:
    # Archives hold many images of the same few sizes: the cache saves recomputing the scaling.
    return image_tokens(model, width, height, detail)
