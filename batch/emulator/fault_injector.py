"""Which fault fires for a request: the installed rules, their clock, hit counts and seeded draws.

The chat pipeline asks :class:`FaultInjector` once per request, after routing, auth, body parsing
and image decoding and just before admission: the first rule that matches and fires wins
(:meth:`FaultInjector.pick`), and a hit is counted (:meth:`FaultInjector.commit`) only when the
fault is really injected, with no ``await`` between decision and count. The rules themselves are
:class:`~.faults.Fault` (see :mod:`.faults` for the kinds and what each does).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .faults import Fault
from .stats import DeploymentStats, LogEntry, VisionStats

__all__ = ["FaultInjector", "Hit"]


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule that fired for one request; ``FaultInjector.commit`` counts it once injected."""

    index: int
    fault: Fault

    @property
    def kind(self) -> str:
        return self.fault.kind


class FaultInjector:
    """The installed rules, their clock, hit counts and per-rule seeded RNGs.

    Each rule draws from its own ``random.Random`` seeded from the config seed and the
    rule's position, and only when a request passes the rule's other filters, so a run of
    the same requests against the same rules hits the same number of them, and one rule's
    draws never shift another's.
    """

    def __init__(self, rules: Sequence[Fault], *, seed: int, now: float) -> None:
        self._seed = seed
        self.rules: tuple[Fault, ...] = ()
        self.hits: list[int] = []
        self.installed_at = now
        self._rngs: list[random.Random] = []
        self.install(rules, now)

    def install(self, rules: Sequence[Fault], now: float) -> None:
        """Replace the rules; their clock, counts and RNGs start afresh."""
        self.rules = tuple(rules)
        self.restart(now)

    def restart(self, now: float) -> None:
        self.installed_at = now
        self.hits = [0] * len(self.rules)
        self._rngs = [random.Random(f"emulator-fault|{self._seed}|{i}") for i in range(len(self.rules))]

    def pick(
        self,
        deployment: str | None,
        texts: Sequence[str],
        shas: Sequence[str],
        now: float,
        *,
        kinds: frozenset[str] | None = None,
    ) -> Hit | None:
        """The first rule that applies to this request and fires, if any (nothing counted yet).
        ``deployment=None`` (the Vision route) matches only rules without one; ``kinds``, when
        given, skips rules of other kinds."""
        if not self.rules:
            return None
        elapsed = now - self.installed_at
        for i, rule in enumerate(self.rules):
            if rule.deployment is not None and rule.deployment != deployment:
                continue
            if kinds is not None and rule.kind not in kinds:
                continue
            if elapsed < rule.start_s or (rule.end_s is not None and elapsed >= rule.end_s):
                continue
            if rule.count is not None and self.hits[i] >= rule.count:
                continue
            if rule.match is not None and not _matches(rule.match, texts, shas):
                continue
            if rule.rate <= 0.0:
                continue
            if rule.rate < 1.0 and self._rngs[i].random() >= rule.rate:
                continue
            return Hit(i, rule)
        return None

    def commit(self, hit: Hit, stats: DeploymentStats | VisionStats, entry: LogEntry) -> None:
        """Count an injected fault: the rule's hits, the deployment's stats, the log entry."""
        if hit.index < len(self.hits) and self.rules[hit.index] is hit.fault:
            self.hits[hit.index] += 1
        stats.record_fault(hit.kind)
        entry.fault = hit.kind

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "faults": [rule.to_json() for rule in self.rules],
            "hits": list(self.hits),
            "elapsed_s": now - self.installed_at,
        }


def _matches(match: str, texts: Sequence[str], shas: Sequence[str]) -> bool:
    if any(match in t for t in texts):
        return True
    prefix = match.lower()
    return any(sha.startswith(prefix) for sha in shas)
