"""The emulator's text tokenizer: deterministic, dependency-free, deliberately not tiktoken.

One token per run of word characters (``\\w+``) and one per other non-space character. Real
BPE counts differ, but the emulator only has to be self-consistent: ``usage`` and truncation
use the same counter, and a client estimator cannot pass a test by sharing our code.
"""

from __future__ import annotations

import re

__all__ = ["MESSAGE_OVERHEAD", "REPLY_PRIMING", "count_tokens", "truncate_to_tokens"]

_TOKEN = re.compile(r"\w+|[^\w\s]")

#: Tokens added per chat message for the role and the message separators (as OpenAI's
#: cookbook counts them: 3 framing tokens + the role name).
MESSAGE_OVERHEAD = 4
#: Tokens added once per request: the assistant reply is primed with ``<|start|>assistant``.
REPLY_PRIMING = 3


def count_tokens(text: str) -> int:
    """Number of tokens in ``text`` by the emulator's rule."""
    return sum(1 for _ in _TOKEN.finditer(text))


def truncate_to_tokens(text: str, limit: int) -> str:
    """The longest prefix of ``text`` holding exactly ``min(limit, count_tokens(text))`` tokens.

    Cutting right after the ``limit``-th token means the prefix re-tokenizes to the same
    tokens, so ``count_tokens(truncate_to_tokens(t, n)) == n`` whenever ``t`` has ``n`` or more.
    """
    if limit <= 0:
        return ""
    end = 0
    for index, match in enumerate(_TOKEN.finditer(text), start=1):
        end = match.end()
        if index == limit:
            return text[:end]
    return text
