"""The Batch API's documented limits, in one place for the route that obeys them and the estimate
that predicts them: lines and bytes per input file, and the enqueued-token quota per model."""

from __future__ import annotations

__all__ = ["DEFAULT_ENQUEUED_TOKENS", "LINES_PER_FILE", "MAX_FILE_BYTES", "default_enqueued_tokens"]

#: Input file size limit of every Batch API (200 MB), in bytes, with base64 images counted.
MAX_FILE_BYTES = 200 * 1000 * 1000
#: Requests per input file: Azure Global Batch 100,000; OpenAI and the Azure v1 API 50,000.
LINES_PER_FILE = {"azure": 100_000, "azure-v1": 50_000, "openai": 50_000}
#: Azure Global Batch default enqueued-token quotas, by model (longest name first).
DEFAULT_ENQUEUED_TOKENS: tuple[tuple[str, int], ...] = (
    ("gpt-4o-mini", 1_000_000_000),
    ("gpt-4o", 200_000_000),
    ("gpt-4-turbo", 80_000_000),
    ("gpt-35-turbo", 1_000_000_000),
    ("gpt-4", 30_000_000),
)


def default_enqueued_tokens(model: str) -> int | None:
    """The documented default quota for ``model`` (a name or a dated version), or None."""
    name = model.lower()
    for prefix, quota in DEFAULT_ENQUEUED_TOKENS:
        if name == prefix or name.startswith(prefix + "-"):  # gpt-4 is not gpt-4.1
            return quota
    return None
