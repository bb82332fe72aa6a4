"""How prices and costs appear in ``--json`` output: one shape for ``batch estimate`` and ``batch report``."""

from __future__ import annotations

from typing import Any

from .prices import Price

__all__ = ["price_dict", "usd_pair"]


def price_dict(p: Price) -> dict[str, Any]:
    """A price entry as the JSON shows it (USD per 1M tokens, with its source and date)."""
    return {
        "entry": p.name,
        "input": p.input,
        "cached_input": p.cached_input,
        "output": p.output,
        "batch_input": p.batch_input,
        "batch_output": p.batch_output,
        "batch_derived": p.batch_derived,
        "unit": "USD per 1M tokens",
        "source": p.source,
        "date": p.date,
    }


def usd_pair(standard: float, batch: float) -> dict[str, float]:
    """A cost at standard and at Batch prices, as the JSON shows it."""
    return {"standard": standard, "batch": batch}
