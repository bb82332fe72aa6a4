"""Seeded, switchable fault injection: the rules and the decision of which one fires.

A ``Fault`` rule names a kind (429 variants, 5xx, a dropped connection, a hang, a slow or
malformed body, content-filter verdicts, a model refusal, 401/404/413) and where it applies: a fraction of the
matching requests (``rate``, drawn from a per-rule RNG seeded by the config seed), a time
window since the rules were installed, a text or image-sha256 prefix (``match``), one
deployment, at most ``count`` hits.

``FaultInjector`` (:mod:`.fault_injector`) holds the rules. The chat pipeline asks it once per request, after routing,
auth, body parsing and image decoding (so the request log has the request's images and texts)
and just before admission: the first rule that matches and fires wins. Pre-admission kinds
(``PRE_ADMISSION_KINDS``: 429s, 401, 404, 413, content-filter-prompt) answer at once and are
not charged; the others happen after admission, charged as a failing backend would be. A hit
is counted only when the fault is really injected (a post-admission fault whose request the
real limiter refuses is not), and no ``await`` separates the decision from the count, so
``count`` holds under any concurrency.

What the client then sees (error bodies, cut connections, hangs, slow or truncated bodies) is
written by ``fault_responses``.

The Azure AI Vision read route asks too, with no deployment (so only rules without a
``deployment`` apply to it) and only the kinds that make sense there (``VISION_KINDS``: no
content-filter verdicts); a rule of another kind is skipped for it without drawing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

__all__ = [
    "ANSWERING_KINDS",
    "FAILING_KINDS",
    "FAULT_KINDS",
    "NO_STATUS_KINDS",
    "PRE_ADMISSION_KINDS",
    "VISION_KINDS",
    "Fault",
    "parse_fault_spec",
    "parse_fault_specs",
]

#: Decided before admission, not charged.
PRE_ADMISSION_KINDS: tuple[str, ...] = (
    "429",
    "429-retry-after",
    "429-bare",
    "429-quota",
    "401",
    "404",
    "413",
    "content-filter-prompt",
)
#: After admission (charged), no answer produced: the backend failed.
FAILING_KINDS: tuple[str, ...] = ("500", "502", "503", "504", "reset", "hang")
#: After admission (charged), an answer was produced and is delivered oddly.
#: refusal: message.refusal instead of content; non-json-answer: free text, as a server that ignores
#: response_format; schema-drift: JSON missing a required property (see ``structured``).
ANSWERING_KINDS: tuple[str, ...] = (
    "slow-body", "malformed-json", "content-filter-completion", "refusal", "non-json-answer", "schema-drift",
)  # fmt: skip
FAULT_KINDS: tuple[str, ...] = PRE_ADMISSION_KINDS + FAILING_KINDS + ANSWERING_KINDS
#: Kinds that deliver no HTTP status at all (the log records ``status: null``).
NO_STATUS_KINDS = frozenset({"reset", "hang"})
#: Kinds that apply to the Vision read route (it has no content filter).
VISION_KINDS = frozenset(FAULT_KINDS) - {
    "content-filter-prompt", "content-filter-completion", "refusal", "non-json-answer", "schema-drift",
}  # fmt: skip

_FLOAT_FIELDS = ("rate", "start_s", "end_s", "hang_s", "trickle_s", "retry_after_s")
_INT_FIELDS = ("count",)
_STR_FIELDS = ("match", "deployment")
_OPTIONAL_FIELDS = frozenset({"end_s", "match", "deployment", "count"})


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault rule (see the module docstring; ``FAULT_KINDS`` lists the kinds).

    ``rate`` is the fraction of matching requests hit; ``start_s``/``end_s`` a window in
    seconds since the rules were installed (``end_s`` exclusive, ``None`` = open); ``match``
    a substring of a user text or a prefix of an image's sha256 (hex, case-insensitive);
    ``deployment`` restricts it to one deployment; ``count`` stops it after that many hits.
    ``hang_s`` is how long ``hang`` holds, ``trickle_s`` how long ``slow-body`` spreads its
    body over, ``retry_after_s`` the wait that ``429`` and ``429-retry-after`` announce.
    """

    kind: str
    rate: float = 1.0
    start_s: float = 0.0
    end_s: float | None = None
    match: str | None = None
    deployment: str | None = None
    count: int | None = None
    hang_s: float = 600.0
    trickle_s: float = 5.0
    retry_after_s: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; kinds: {', '.join(FAULT_KINDS)}")
        if not (math.isfinite(self.rate) and 0.0 <= self.rate <= 1.0):
            raise ValueError(f"fault {self.kind}: rate must be between 0 and 1, got {self.rate!r}")
        if not (math.isfinite(self.start_s) and self.start_s >= 0.0):
            raise ValueError(f"fault {self.kind}: start_s must be a finite number >= 0, got {self.start_s!r}")
        if self.end_s is not None and not (math.isfinite(self.end_s) and self.end_s > self.start_s):
            raise ValueError(f"fault {self.kind}: end_s must be a finite number > start_s, got {self.end_s!r}")
        if self.match is not None and not self.match:
            raise ValueError(f"fault {self.kind}: match must be a non-empty string")
        if self.deployment is not None and not self.deployment:
            raise ValueError(f"fault {self.kind}: deployment must be a non-empty string")
        if self.count is not None and self.count < 1:
            raise ValueError(f"fault {self.kind}: count must be >= 1, got {self.count!r}")
        for name, low_ok in (("hang_s", False), ("trickle_s", True), ("retry_after_s", True)):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (value == 0 and not low_ok):
                bound = ">= 0" if low_ok else "> 0"
                raise ValueError(f"fault {self.kind}: {name} must be a finite number {bound}, got {value!r}")

    @property
    def before_admission(self) -> bool:
        return self.kind in PRE_ADMISSION_KINDS

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, raw: object, where: str = "fault") -> Fault:
        """A rule from a JSON object or TOML table with the field names; unknown keys and
        wrong types are errors naming the key."""
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object/table, got {raw!r}")
        table = cast(dict[str, Any], raw)
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(table) - allowed)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        if "kind" not in table:
            raise ValueError(f"{where}: 'kind' is required")
        kwargs: dict[str, Any] = {}
        for key, value in table.items():
            kwargs[key] = _typed(key, value, where)
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc


def _typed(key: str, value: object, where: str) -> object:
    if value is None and key in _OPTIONAL_FIELDS:
        return None
    if key == "kind":
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # kind = 500 in TOML/JSON means "500"
        if isinstance(value, str):
            return value
        raise ValueError(f"{where}: 'kind' must be a string, got {value!r}")
    if key in _FLOAT_FIELDS:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{where}: {key!r} must be a number, got {value!r}")
    if key in _INT_FIELDS:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{where}: {key!r} must be an integer, got {value!r}")
    if isinstance(value, str):
        return value
    raise ValueError(f"{where}: {key!r} must be a string, got {value!r}")


def parse_fault_spec(text: str) -> Fault:
    """Parse the CLI form ``KIND[:RATE][,key=value...]``, e.g. ``500:1,match=ab12cd,count=2``.

    Keys are ``Fault``'s field names; ``end_s``, ``match``, ``deployment`` and ``count`` take
    ``none`` for "unset". Errors name the offending part."""
    spec = text.strip()
    head, *pairs = spec.split(",")
    kind, colon, rate_text = head.strip().partition(":")
    kind = kind.strip()
    if not kind:
        raise ValueError(f"fault {text!r}: missing KIND (expected KIND[:RATE][,key=value...])")
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault {text!r}: unknown kind {kind!r}; kinds: {', '.join(FAULT_KINDS)}")
    kwargs: dict[str, Any] = {"kind": kind}
    if colon:
        kwargs["rate"] = _number("rate", rate_text, text)
    allowed = {f.name for f in dataclasses.fields(Fault)} - {"kind"}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise ValueError(f"fault {text!r}: expected key=value, got {pair!r}")
        if key not in allowed:
            raise ValueError(f"fault {text!r}: unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
        if key in kwargs:
            raise ValueError(f"fault {text!r}: {key!r} given twice")
        if key in _OPTIONAL_FIELDS and value.lower() == "none":
            kwargs[key] = None
        elif key in _FLOAT_FIELDS:
            kwargs[key] = _number(key, value, text)
        elif key in _INT_FIELDS:
            try:
                kwargs[key] = int(value)
            except ValueError:
                raise ValueError(f"fault {text!r}: {key} must be an integer, got {value!r}") from None
        else:
            kwargs[key] = value
    try:
        return Fault(**kwargs)
    except ValueError as exc:
        raise ValueError(f"fault {text!r}: {exc}") from exc


def parse_fault_specs(texts: Sequence[str]) -> tuple[Fault, ...]:
    return tuple(parse_fault_spec(t) for t in texts)


def _number(key: str, value: str, text: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"fault {text!r}: {key} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"fault {text!r}: {key} must be finite, got {value!r}")
    return number
