"""The one retry loop: every attempt of one request, for chat calls and Azure AI Vision read alike.

:meth:`Attempts.run` takes a ``send`` (one attempt: a coroutine function raising the classified
:class:`~batch.core.ApiError`) and a :class:`Pacing` (what to wait for before an attempt, and what
each outcome tells the pacer), and returns a typed result: :class:`Delivered` or :class:`Failed`. It owns

* attempt counting, and one 429 budget (``RetryPolicy.max_throttled``);
* a 429: the pacing's shared cool-down (no sleep here: the next ``acquire`` waits it out);
* a transient failure: ``should_retry`` / ``retry_delay``, sleeping through the injected ``sleep``;
* a 404: one delayed retry (a deployment created minutes ago), then fatal;
* filtered, permanent and fatal outcomes, never retried.

What the run does with them (stop on a fatal error or an outage, count, observe latency) is the
caller's: it learns of each attempt through a :class:`Watch` and decides from the result. Only
exceptions of the tool's own :class:`~batch.core.ApiError` tree are handled; anything else (a bug,
``CancelledError``) propagates untouched.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from ..core import (
    ApiError,
    ContentFilteredError,
    FatalApiError,
    RateLimitedError,
    RowError,
    TransientApiError,
)
from .retry import RetryPolicy, retry_delay, should_retry

__all__ = ["NOT_FOUND_RETRY_S", "Attempts", "Failed", "FailureKind", "Pacing", "Delivered", "Watch"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# DeploymentNotFound can be a deployment created minutes ago: one delayed retry, then stop.
NOT_FOUND_RETRY_S = 3.0

P = TypeVar("P")  # what a pacing's acquire hands back for its other hooks (a limiter's permit)
R = TypeVar("R")  # what one successful attempt returns
R_contra = TypeVar("R_contra", contravariant=True)

#: ``filtered``: the content filter refused the prompt; ``error``: permanent, or the pacing refused
#: the request (never retried); ``exhausted``: out of attempts or of 429s; ``fatal``: every further
#: request would fail the same way; ``stopped``: the run is stopping, the request stays undone.
FailureKind = Literal["filtered", "error", "exhausted", "fatal", "stopped"]


class Pacing(Protocol[P, R_contra]):
    """When an attempt may go, and what its outcome tells the pacer (a limiter, a call pacer)."""

    async def acquire(self) -> P:
        """Wait for room; may raise :class:`~batch.core.RowError` for a request that can never fit."""
        ...

    def on_success(self, permit: P, reply: R_contra) -> None: ...

    def on_throttle(self, permit: P, error: RateLimitedError) -> None:
        """A 429: set the shared cool-down the next :meth:`acquire` waits out."""
        ...

    def on_transient(self, permit: P, error: TransientApiError) -> None: ...

    def refund(self, permit: P) -> None:
        """The attempt failed in a way the server did not charge for (a fatal error)."""
        ...


class Watch(Protocol):
    """What the run hears of each attempt, and whether it wants no more of them."""

    def stopping(self) -> bool: ...

    def on_attempt(self) -> None: ...

    def on_throttled(self) -> None: ...

    def on_transient(self, error: TransientApiError) -> None:
        """May stop the run (e.g. the endpoint refuses connections): the loop asks right after."""
        ...


class _Unwatched:
    """No run around the calls: never stopping, nothing counted."""

    __slots__ = ()

    def stopping(self) -> bool:
        return False

    def on_attempt(self) -> None:
        pass

    def on_throttled(self) -> None:
        pass

    def on_transient(self, error: TransientApiError) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Delivered(Generic[R]):
    """The request succeeded."""

    reply: R
    attempts: int
    #: seconds from the first wait for pacing to the reply
    elapsed_s: float
    #: seconds the successful attempt was on the wire
    wire_s: float


@dataclass(frozen=True, slots=True)
class Failed:
    """The request ended without a reply (or the run is stopping)."""

    kind: FailureKind
    #: the last failure; None only when the run stopped before any attempt failed
    error: ApiError | RowError | None
    attempts: int
    #: how many of the attempts were 429s
    throttled: int
    elapsed_s: float


class Attempts:
    """The retry loop for one kind of call; one instance serves every request of a run.

    ``clock`` and ``sleep`` are parameters so tests move time instead of waiting.
    ``not_found_retry_s``: the delay before the one retry of a 404, or None for no retry.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        watch: Watch | None = None,
        rng: random.Random | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        not_found_retry_s: float | None = NOT_FOUND_RETRY_S,
    ) -> None:
        self.policy = policy
        self._watch: Watch = watch if watch is not None else _Unwatched()
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._not_found_retry_s = not_found_retry_s

    async def run(self, send: Callable[[], Awaitable[R]], pacing: Pacing[P, R]) -> Delivered[R] | Failed:
        """Attempt ``send`` until it succeeds, fails for good, or the run stops."""
        policy, watch, clock = self.policy, self._watch, self._clock
        attempts = throttled = 0
        retried_not_found = False
        started = clock()
        last: ApiError | None = None
        while not watch.stopping():
            try:
                permit = await pacing.acquire()
            except RowError as exc:
                return Failed("error", exc, attempts, throttled, clock() - started)
            attempts += 1
            watch.on_attempt()
            sent = clock()
            try:
                reply = await send()
            except RateLimitedError as exc:
                last = exc
                throttled += 1
                watch.on_throttled()
                pacing.on_throttle(permit, exc)
                if throttled >= policy.max_throttled:
                    break
                continue
            except FatalApiError as exc:
                pacing.refund(permit)
                if exc.status == 404 and not retried_not_found and self._not_found_retry_s is not None:
                    retried_not_found = True
                    await self._sleep(self._not_found_retry_s)
                    continue
                return Failed("fatal", exc, attempts, throttled, clock() - started)
            except ContentFilteredError as exc:
                return Failed("filtered", exc, attempts, throttled, clock() - started)
            except TransientApiError as exc:
                last = exc
                pacing.on_transient(permit, exc)
                watch.on_transient(exc)
                if watch.stopping():
                    break
                if not should_retry(exc, attempts, policy):
                    break
                await self._sleep(retry_delay(exc, attempts, policy, self._rng))
                continue
            except ApiError as exc:  # permanent: 400, 403, 413, 422 ...
                return Failed("error", exc, attempts, throttled, clock() - started)
            pacing.on_success(permit, reply)
            done = clock()
            return Delivered(reply, attempts, done - started, done - sent)
        kind: FailureKind = "stopped" if last is None or watch.stopping() else "exhausted"
        return Failed(kind, last, attempts, throttled, clock() - started)
