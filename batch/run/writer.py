"""The writer task: journaled rows turned into part files when enough are buffered or the flush timer runs out.

A write that fails (disk full, a mount turned read-only) stops the run instead of losing rows: the
journal still holds them, and a resume recovers them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from ..ledger import ResultStore, write_failure

__all__ = ["write_parts"]


async def write_parts(
    store: ResultStore, wanted: asyncio.Event, done: asyncio.Event, halt: Callable[[str], None]
) -> None:
    """Flush the store's buffer whenever ``wanted`` is set or every 0.5 s, until ``done``; then close it."""

    async def flush(write: Callable[[Any], None], taken: Any) -> None:
        try:
            await asyncio.to_thread(write, taken)
        except OSError as exc:  # the journal still holds these rows: a resume recovers them
            halt(write_failure(store.output, exc))

    while not done.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(wanted.wait(), timeout=0.5)
        wanted.clear()
        if store.flush_due:
            await flush(store.flush, store.take_buffer())
    await flush(lambda _: store.close(), None)
