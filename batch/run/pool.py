"""Several deployments in one run: the pool a row is routed through.

Each :class:`Member` is one deployment with everything of its own: endpoint, model, credential,
rate limiter, retry watch (its :class:`~.sender.RequestSender`), planner and request builder (its
model's image rules and limits), and HTTP client. :meth:`DeploymentPool.choose` gives a row to the
live member that would admit it soonest: ``wait_s`` = the rows already given to it beyond what its
windows admit right now, over its steady request rate; among those that would all admit at once,
the one with the fewest rows in hand for its rate (so rows spread in proportion to the limits).

A member that fails hard (a fatal reply: 401, 404, quota gone; or an endpoint that stopped
answering: :data:`~.sender.DOWN_AFTER` attempts in a row over :data:`~.sender.DOWN_S`) leaves
the pool with a message on stderr; its rows go to the rest. The run stops only when no member is
left. A job with one ``[endpoint]`` is a pool of one: its failure stops the run as it always did.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..core import EndpointSpec, ModelInfo
from ..plan import Planner, RequestBuilder
from ..send import ChatClient, Credential, RateLimiter, Target
from .rows import RowRequests
from .sender import RequestSender

__all__ = ["CAPABILITY_CODES", "DeploymentPool", "Member"]

#: Refusals that depend on the deployment's model, not on the row: another deployment may take it.
CAPABILITY_CODES = frozenset({"ocr_unsupported", "too_many_images"})
#: Requests per second assumed for a deployment whose limits are not known yet (none configured, no
#: header seen): rows then spread over such deployments by how many each has in hand.
_UNKNOWN_RATE = 1000.0


@dataclass(eq=False)
class Member:
    """One deployment of the pool and its own parts (see the module docstring)."""

    ep: EndpointSpec
    model: ModelInfo
    target: Target
    credential: Credential
    limiter: RateLimiter
    planner: Planner
    builder: RequestBuilder
    sender: RequestSender | None = None
    rows: RowRequests | None = None
    client: ChatClient | None = None
    busy: int = 0  # rows given to it and not yet finished
    gone: str | None = None  # why it left the pool
    left: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def label(self) -> str:
        return self.ep.label

    def wait_s(self) -> float:
        """Roughly how long a row given to it now would wait for admission."""
        assert self.sender is not None
        estimate = self.sender.live.estimate
        rate = self.limiter.max_request_rate(estimate)
        if rate is None or rate <= 0:
            return 0.0
        free = self.limiter.free_requests(estimate) or 0
        return max(0, self.busy + 1 - free) / rate

    def share(self) -> float:
        """Rows given to it (this one included) over its steady rate: among deployments that would
        all admit at once, rows spread in proportion to their limits."""
        assert self.sender is not None
        rate = self.limiter.max_request_rate(self.sender.live.estimate) or _UNKNOWN_RATE
        return (self.busy + 1) / rate

    def window_share(self) -> int | None:
        """Requests this deployment wants in flight (None: no limit known). Little's law: rate x
        latency, with headroom for jitter and rows being prepared; and never fewer than its windows
        could admit right now (the first minute's burst). Rows waiting in the limiter's queue do
        not count as on the wire: counting them made the window only ever grow."""
        assert self.sender is not None
        live = self.sender.live
        rate = self.limiter.max_request_rate(live.estimate)
        if rate is None:
            return None
        steady = math.ceil(rate * live.latency_s * 1.5) + 2
        free = self.limiter.free_requests(live.estimate) or 0
        return max(steady, self.sender.on_wire + free)

    def tokens_text(self) -> str:
        """``name used/limit`` in thousands of tokens per minute, for the progress bar."""
        limit = f"/{self.limiter.tpm / 1000:.0f}k" if self.limiter.tpm else ""
        mark = "" if self.gone is None else " (out)"
        return f"{self.ep.deployment} {self.limiter.charged_last_window() / 1000:.1f}k{limit}{mark}"


class DeploymentPool:
    """The run's deployments; ``halt`` stops the run when the last one leaves."""

    def __init__(self, members: Iterable[Member], halt: Callable[[str], None]) -> None:
        self.members = list(members)
        self._halt = halt
        self.messages: list[str] = []

    @property
    def pooled(self) -> bool:
        return len(self.members) > 1

    def live(self) -> list[Member]:
        return [m for m in self.members if m.gone is None]

    def choose(self, skip: Iterable[Member] = ()) -> Member | None:
        """The live member, not in ``skip``, that would admit a row soonest; None if there is none."""
        skipped = set(skip)
        candidates = [m for m in self.live() if m not in skipped]
        if not candidates:
            return None
        return min(candidates, key=lambda m: (m.wait_s(), m.share()))

    def leave(self, member: Member, reason: str) -> None:
        """Take a member out of the pool (once); the run stops when none is left."""
        if member.gone is not None:
            return
        member.gone = reason
        member.left.set()
        if not self.pooled:
            self._halt(reason)
            return
        left = self.live()
        message = f"deployment {member.label} left the pool ({len(left)} left): {reason}"
        self.messages.append(message)
        print(f"batch: {message}", file=sys.stderr, flush=True)
        if not left:
            self._halt(f"every deployment left the pool; the last: {member.label}: {reason}")

    def tokens_text(self) -> str | None:
        """Each deployment's tokens/min against its limit (pools only)."""
        return " | ".join(m.tokens_text() for m in self.members) if self.pooled else None
