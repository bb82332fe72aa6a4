"""The run's live progress bar and its closing summary (text only: no keys, no request bodies)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from ..core import CostMeter, Outcome


@dataclass(slots=True)
class Tally:
    """Counts the run keeps as rows finish; the summary is built from it."""

    total_rows: int
    already_done: int = 0
    retried: int = 0  # rows done before whose error was sent again (retry_errors)
    ok: int = 0
    filtered: int = 0
    error: int = 0
    refused: int = 0  # the model declined (message.refusal): structured outputs
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    throttled: int = 0
    cost_usd: float = 0.0
    batch_cost_usd: float = 0.0
    unpriced_models: set[str] = field(default_factory=set)
    error_codes: dict[str, int] = field(default_factory=dict)
    # every run's spend on this output (None until counted at the end): a resumed run shows both
    output_cost_usd: float | None = None
    output_batch_cost_usd: float | None = None

    def add(self, o: Outcome, costs: CostMeter | None = None) -> None:
        if o.status == "ok":
            self.ok += 1
        elif o.status == "filtered":
            self.filtered += 1
        elif o.status == "refused":
            self.refused += 1
        else:
            self.error += 1
            key = o.error_code or "unknown"
            self.error_codes[key] = self.error_codes.get(key, 0) + 1
        if o.usage is not None:
            self.prompt_tokens += o.usage.prompt_tokens
            self.completion_tokens += o.usage.completion_tokens
        if costs is not None:
            usage, model = o.usage, o.answer.model if o.answer is not None else None
            standard, batch = costs.add(
                model, usage.prompt_tokens if usage else None, usage.completion_tokens if usage else None
            )
            self.cost_usd += standard
            self.batch_cost_usd += batch
            self.unpriced_models |= costs.unpriced

    def count_output_cost(self, usage: Iterable[tuple[str | None, int | None, int | None]], meter: CostMeter) -> None:
        """The spend of every run on this output, from its recorded (model, prompt, completion)."""
        standard = batch = 0.0
        for model, prompt, completion in usage:
            s, b = meter.add(model, prompt, completion)
            standard, batch = standard + s, batch + b
        self.output_cost_usd, self.output_batch_cost_usd = standard, batch

    @property
    def finished(self) -> int:
        return self.ok + self.filtered + self.error + self.refused


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
            f"(ok {t.ok}, filtered {t.filtered}, error {t.error}" + (f", refused {t.refused})" if t.refused else ")"),
            f"tokens billed now: {t.prompt_tokens} prompt + {t.completion_tokens} completion; "
            f"requests {t.requests}, throttled (429) {t.throttled}",
            f"cost now: ${t.cost_usd:.4f} at standard prices (${t.batch_cost_usd:.4f} at Batch prices)"
            + (f"; no price for {', '.join(sorted(t.unpriced_models))}" if t.unpriced_models else ""),
            f"wall time: {self.wall_s:.1f} s",
        ]
        if t.output_cost_usd is not None and (t.already_done or t.retried):
            lines.insert(
                3,
                f"cost of this output, all runs: ${t.output_cost_usd:.4f} at standard prices "
                f"(${t.output_batch_cost_usd or 0.0:.4f} at Batch prices)",
            )
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
    """Rows done, rows/s, ETA, error and filtered rows, tokens reserved per minute, 429s, spend.

    On a terminal: a tqdm bar redrawn in place. Anywhere else (a log file, a pipe): one plain line
    every ``interval_s`` seconds and a last one at the end, never ``\\r`` redraws.
    ``tok/min`` is what the endpoint reserved at admission (prompt estimate + max_tokens, the way
    Azure counts against the limit), not the billed usage the summary and ``batch report`` show.
    """

    def __init__(
        self,
        total: int,
        initial: int,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval_s: float = 10.0,
    ) -> None:
        self._stream = stream or sys.stderr
        self._plain = enabled and not _is_terminal(self._stream)
        self._total, self._done, self._initial = total, initial, initial
        self._interval_s = interval_s
        self._started = self._last_line = time.monotonic()
        self._status = ""
        self._bar = tqdm(
            total=total,
            initial=initial,
            unit="row",
            disable=not enabled or self._plain,
            file=self._stream,
            dynamic_ncols=True,
            mininterval=0.5,
            smoothing=0.05,
        )

    def advance(
        self, n: int, *, tokens_per_min: float, tpm: int | None, tally: Tally, deployments: str | None = None
    ) -> None:
        limit = f"/{tpm / 1000:.0f}k" if tpm else ""
        each = f" [{deployments}]" if deployments else ""  # a pool: each deployment's tok/min and limit
        self._status = (
            f"errors {tally.error} filtered {tally.filtered} "
            f"reserved {tokens_per_min / 1000:.1f}k{limit} tok/min{each} 429s {tally.throttled} ${tally.cost_usd:.2f}"
        )
        self._done += n
        self._bar.set_postfix_str(self._status, refresh=False)
        self._bar.update(n)
        if self._plain and time.monotonic() - self._last_line >= self._interval_s:
            self._line()

    def _line(self) -> None:
        self._last_line = now = time.monotonic()
        rate = (self._done - self._initial) / max(now - self._started, 1e-9)
        share = 100 * self._done / self._total if self._total else 100.0
        print(
            f"progress: {self._done}/{self._total} rows ({share:.0f}%), {rate:.1f} rows/s, {self._status}".rstrip(", "),
            file=self._stream,
            flush=True,
        )

    def note(self, text: str) -> None:
        """A message that must be seen (even with the bar off), printed without breaking the bar."""
        if self._bar.disable:
            print(text, file=self._stream, flush=True)
        else:
            self._bar.write(text, file=self._stream)

    def close(self) -> None:
        if self._plain and self._done > self._initial:
            self._line()
        self._bar.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
