"""How a run stops: the first fatal error or signal stops it; requests on the wire may still land.

A stop takes no new rows. Requests already on the wire are billed whether or not we wait for them,
so the run waits for them up to the endpoint's timeout and records their rows: a resume must not
send them again. A second SIGINT/SIGTERM abandons them at once (they are sent again on resume).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import suppress

__all__ = ["Stopper"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopper:
    """The run's stop: its event, its first reason, and the signal handlers that set it."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.abandon = asyncio.Event()  # a second signal: stop waiting for requests on the wire
        self.reason: str | None = None

    def halt(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.event.set()

    def on_signal(self, name: str) -> None:
        if self.event.is_set():
            self.abandon.set()
        self.halt(f"received {name}")

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in _SIGNALS:
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.on_signal, signal.Signals(sig).name)

    def remove(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in _SIGNALS:
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    async def drain(
        self,
        workers: Sequence[asyncio.Future[None]],
        on_wire: Callable[[], int],
        timeout_s: float,
        note: Callable[[str], None],
    ) -> None:
        """Wait while requests are on the wire, up to ``timeout_s`` or a second signal; then give
        workers whose replies just landed a moment to record their rows."""
        deadline = time.monotonic() + timeout_s
        if on_wire():
            note(
                f"stopping: waiting up to {timeout_s:.0f} s for {on_wire()} request(s) on the wire to land "
                "(Ctrl-C again to abandon them; they would be sent again on resume)"
            )
        while on_wire() and not self.abandon.is_set() and time.monotonic() < deadline:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.abandon.wait(), timeout=0.05)
        if not self.abandon.is_set():
            await asyncio.wait(workers, timeout=0.5)
