"""The run's live progress bar and its closing summary (text only: no keys, no request bodies)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from ..core import Outcome


@dataclass(slots=True)
class Tally:
    """Counts the run keeps as rows finish; the summary is built from it."""

    total_rows: int
    already_done: int = 0
    retried: int = 0  # rows done before whose error was sent again (retry_errors)
    ok: int = 0
    filtered: int = 0
    error: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    throttled: int = 0
    cost_usd: float = 0.0
    batch_cost_usd: float = 0.0
    unpriced_models: set[str] = field(default_factory=set)
    error_codes: dict[str, int] = field(default_factory=dict)

    def add(self, o: Outcome) -> None:
        if o.status == "ok":
            self.ok += 1
        elif o.status == "filtered":
            self.filtered += 1
        else:
            self.error += 1
            key = o.error_code or "unknown"
            self.error_codes[key] = self.error_codes.get(key, 0) + 1
        if o.usage is not None:
            self.prompt_tokens += o.usage.prompt_tokens
            self.completion_tokens += o.usage.completion_tokens

    @property
    def finished(self) -> int:
        return self.ok + self.filtered + self.error


@dataclass(frozen=True, slots=True)
class RunSummary:
    output: Path
    tally: Tally
    wall_s: float
    complete: bool
    stopped_reason: str | None = None

    def render(self) -> str:
        t = self.tally
        lines = [
            f"rows: {t.total_rows} in manifest, {t.already_done} already done, "
            + (f"{t.retried} that ended in errors sent again, " if t.retried else "")
            + f"{t.finished} finished now "
            f"(ok {t.ok}, filtered {t.filtered}, error {t.error})",
            f"tokens: {t.prompt_tokens} prompt + {t.completion_tokens} completion; "
            f"requests {t.requests}, throttled (429) {t.throttled}",
            f"cost: ${t.cost_usd:.4f} at standard prices (${t.batch_cost_usd:.4f} at Batch prices)"
            + (f"; no price for {', '.join(sorted(t.unpriced_models))}" if t.unpriced_models else ""),
            f"wall time: {self.wall_s:.1f} s",
        ]
        if t.error_codes:
            codes = ", ".join(f"{k} {v}" for k, v in sorted(t.error_codes.items(), key=lambda kv: -kv[1]))
            lines.append(f"errors by code: {codes}")
        if self.complete:
            lines.append(f"results: {self.output}")
        else:
            lines.append(f"stopped early: {self.stopped_reason}")
            lines.append("progress is saved; run the same command again to resume (finished rows are not re-sent)")
        return "\n".join(lines)


class ProgressBar:
    """A tqdm bar: rows done, rows/s, ETA, tokens/min against the limit, 429s."""

    def __init__(self, total: int, initial: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self._bar = tqdm(
            total=total,
            initial=initial,
            unit="row",
            disable=not enabled,
            file=stream or sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
            smoothing=0.05,
        )

    def advance(
        self,
        n: int,
        *,
        tokens_per_min: float,
        tpm: int | None,
        throttled: int,
        cost_usd: float,
        deployments: str | None = None,
    ) -> None:
        limit = f"/{tpm / 1000:.0f}k" if tpm else ""
        each = f" [{deployments}]" if deployments else ""  # a pool: each deployment's tok/min and limit
        self._bar.set_postfix_str(
            f"tok/min {tokens_per_min / 1000:.1f}k{limit}{each} 429s {throttled} ${cost_usd:.2f}", refresh=False
        )
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()
