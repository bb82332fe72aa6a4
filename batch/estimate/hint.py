"""The OCR hint's share of an estimate: measured on a sample of requests, extrapolated, labelled.

A job with ``[ocr].hint`` sends each page's OCR text inside the prompt; the text is known only once
the page has been read, so the estimate reads a few pages. While the manifest streams past, a
reservoir keeps a uniform random sample of the hinted requests (seeded: the same manifest gives the
same sample); after the pass, those requests' pages are loaded and read with local Tesseract,
exactly as a ``local`` run reads them (for ``azure-read`` rows Tesseract stands in for the
service, and the note says so). The mean extra prompt tokens per request times the number of
hinted requests is the hint's estimate. ``--ocr-sample 0`` skips it and says the hint is not counted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..core import BatchError, JobSpec
from ..ocr import LocalOcrPool, format_ocr_hint
from ..plan import RequestPlan, load_requests
from ..tokens import chat_prompt_tokens

__all__ = ["DEFAULT_OCR_SAMPLE", "HintEstimate", "HintSampler"]

#: Requests read by Tesseract for the estimate (about a second each on an idle 2-core machine).
DEFAULT_OCR_SAMPLE = 3


@dataclass(frozen=True, slots=True)
class HintEstimate:
    requests: int  # hinted requests in the manifest
    sampled: int  # of which read to measure the hint
    mean_tokens: float  # extra prompt tokens per sampled request
    tokens: int  # extrapolated to every hinted request: an estimate
    stand_in: bool  # azure-read rows measured with local Tesseract
    skipped_reason: str | None = None  # why nothing was measured

    def to_dict(self) -> dict[str, object]:
        return {
            "estimated": True,
            "hinted_requests": self.requests,
            "sampled_requests": self.sampled,
            "mean_tokens_per_request": round(self.mean_tokens, 1),
            "tokens": self.tokens,
            "azure_read_measured_with_tesseract": self.stand_in,
            "not_measured_because": self.skipped_reason,
        }

    def note(self) -> str:
        if self.skipped_reason is not None:
            return f"OCR hint of {self.requests:,} requests not counted: {self.skipped_reason}"
        how = " (azure-read rows measured with local Tesseract)" if self.stand_in else ""
        return (
            f"OCR hint: an estimate, {self.mean_tokens:,.0f} prompt tokens per request measured on "
            f"{self.sampled} sampled request(s){how}, extrapolated to {self.requests:,}: +{self.tokens:,} tokens"
        )


@dataclass(slots=True)
class HintSampler:
    """Counts hinted requests by detail and keeps a seeded uniform sample of them (reservoir)."""

    spec: JobSpec
    tokenizer: str
    size: int = DEFAULT_OCR_SAMPLE
    by_detail: dict[str, int] = field(default_factory=dict)
    _seen: int = 0
    _sample: list[tuple[RequestPlan, int]] = field(default_factory=list)
    _rng: random.Random = field(default_factory=lambda: random.Random(13))

    def add(self, plan: RequestPlan) -> None:
        if not plan.hint:
            return
        for index in range(len(plan.requests)):
            self._seen += 1
            self.by_detail[plan.detail] = self.by_detail.get(plan.detail, 0) + 1
            if len(self._sample) < self.size:
                self._sample.append((plan, index))
            else:
                slot = self._rng.randrange(self._seen)
                if slot < self.size:
                    self._sample[slot] = (plan, index)

    def measure(self) -> HintEstimate | None:
        """Read the sampled requests' pages; None when no row carries a hint."""
        if not self._seen:
            return None
        if not self._sample:
            return HintEstimate(self._seen, 0, 0.0, 0, False, "--ocr-sample 0")
        pool = LocalOcrPool(self.spec.ocr.language)
        try:
            extra = [self._extra_tokens(pool, plan, index) for plan, index in self._sample]
        except BatchError as exc:  # no Tesseract, or a sampled page that cannot be read
            return HintEstimate(self._seen, 0, 0.0, 0, False, str(exc))
        finally:
            pool.close()
        mean = sum(extra) / len(extra)
        stand_in = any(plan.ocr == "azure-read" for plan, _ in self._sample)
        return HintEstimate(self._seen, len(extra), mean, round(mean * self._seen), stand_in)

    def _extra_tokens(self, pool: LocalOcrPool, plan: RequestPlan, index: int) -> int:
        for i, pages in enumerate(load_requests(plan, self.spec)):
            if i < index:
                continue
            hints = []
            for page in pages:
                image = page.image if page.image is not None else page.data
                text = pool.read(image) if image is not None else ""
                source = "tesseract" if plan.ocr == "local" else "azure-read"
                hints.append(format_ocr_hint(text, source=source, page=page.number))
            system, user = self.spec.prompt.system, plan.user_text
            with_hint = chat_prompt_tokens(system, f"{user}\n\n" + "\n\n".join(hints), self.tokenizer)
            return with_hint - chat_prompt_tokens(system, user, self.tokenizer)
        return 0
