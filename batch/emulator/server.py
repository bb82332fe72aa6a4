"""Running the emulator: in-process on its own thread (``EmbeddedEmulator``) or as a command.

``EmbeddedEmulator`` gives the server its own event loop in a daemon thread, so a caller's
loop (the batch client, a test) can block, busy itself or finish without starving the server,
and the server's CPU time can be measured apart from the caller's. Reads of stats and the log
hop onto the server loop, so the state needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from .app import create_app
from .config import EmulatorConfig
from .faults import Fault
from .state import STATE_KEY, EmulatorState

__all__ = ["SHUTDOWN_GRACE_S", "EmbeddedEmulator", "bound_port"]

T = TypeVar("T")
_STARTUP_TIMEOUT_S = 30.0
#: How long a stopping server lets in-flight requests finish before cancelling them.
SHUTDOWN_GRACE_S = 2.0


class EmbeddedEmulator:
    """The emulator served from a daemon thread. Use as ``with`` or ``async with``::

    with EmbeddedEmulator(config) as emu:
        post(f"{emu.url}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", ...)
        emu.stats()["deployments"]["gpt-4o"]["admitted"]
    """

    def __init__(self, config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._state: EmulatorState | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> EmbeddedEmulator:
        """Start serving; returns once the port is bound (raises if binding failed)."""
        if self._thread is not None:
            raise RuntimeError("EmbeddedEmulator is already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="batch-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(_STARTUP_TIMEOUT_S):
            raise RuntimeError("emulator did not start in time")
        error = self._startup_error()
        if error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"emulator failed to start: {error}") from error
        return self

    def _startup_error(self) -> BaseException | None:
        """Set by the server thread; a method so type checkers don't assume it is still None."""
        return self._error

    def stop(self) -> None:
        """Stop serving and join the thread (in-flight requests get a short grace period)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(SHUTDOWN_GRACE_S + 10.0)
        self._thread = None
        self._loop = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:  # report any startup failure to the starting thread
                self._error = exc
                return
            self._loop = loop
            self._ready.set()
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self._ready.set()
            loop.close()

    async def _startup(self) -> None:
        app = create_app(self.config)
        self._state = app[STATE_KEY]
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self._requested_port)
        await site.start()
        self._port = bound_port(runner)

    # -- access ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("EmbeddedEmulator is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stats(self) -> dict[str, Any]:
        """Same document as ``GET /_emulator/stats`` (``cpu.thread_s`` is the server thread's)."""
        return self._on_loop(lambda state: state.stats_json())

    def requests(self) -> list[dict[str, Any]]:
        """The request log, as ``GET /_emulator/requests`` returns it."""
        return self._on_loop(lambda state: state.log.to_json())

    def reset(self) -> None:
        """Forget counters, log and window contents and restart the fault rules' clock, counts
        and RNGs (as ``POST /_emulator/reset``)."""
        self._on_loop(lambda state: state.reset())

    def set_faults(self, faults: Sequence[Fault]) -> None:
        """Replace the fault rules; their clock, counts and RNGs restart (as ``PUT /_emulator/faults``)."""
        rules = list(faults)
        self._on_loop(lambda state: state.set_faults(rules))

    def clear_faults(self) -> None:
        """Remove every fault rule (as ``DELETE /_emulator/faults``)."""
        self._on_loop(lambda state: state.set_faults([]))

    def faults(self) -> dict[str, Any]:
        """The installed rules and their hit counts (as ``GET /_emulator/faults``)."""
        return self._on_loop(lambda state: state.faults_json())

    def _on_loop(self, fn: Callable[[EmulatorState], T]) -> T:
        loop, state = self._loop, self._state
        if loop is None or state is None:
            raise RuntimeError("EmbeddedEmulator is not started")

        async def call() -> T:
            return fn(state)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30.0)

    # -- context managers ------------------------------------------------------------------

    def __enter__(self) -> EmbeddedEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedEmulator:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


def bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("emulator bound no TCP address")


# -- command line ----------------------------------------------------------------------------
