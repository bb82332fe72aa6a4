"""How long the emulator holds a response before sending it.

Real vision calls take seconds, and a batch client's concurrency only matters when responses
are slow: with instant answers every client looks perfect. The hold is
``(base_s + per_token_s * completion_tokens) * jitter_factor`` where the factor is a lognormal
draw with mean 1, so the average latency is the nominal one and the tail is realistic.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["LatencyModel", "parse_latency"]


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Response hold time model.

    ``base_s`` is the fixed part (network, prompt processing), ``per_token_s`` the generation
    time of one output token, ``jitter`` the sigma of the lognormal factor (0 = none).
    """

    base_s: float
    per_token_s: float
    jitter: float

    def __post_init__(self) -> None:
        for name in ("base_s", "per_token_s", "jitter"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"LatencyModel.{name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def zero(cls) -> LatencyModel:
        """No hold at all: for tests and for measuring the client's own overhead."""
        return cls(0.0, 0.0, 0.0)

    @classmethod
    def realistic(cls) -> LatencyModel:
        """Multi-second vision calls: ~1.2 s plus ~17 ms per output token, sigma 0.3."""
        return cls(1.2, 0.017, 0.3)

    @property
    def is_zero(self) -> bool:
        return self.base_s == 0.0 and self.per_token_s == 0.0

    def hold_seconds(self, completion_tokens: int, rng: random.Random) -> float:
        """Seconds to hold a response with ``completion_tokens`` output tokens."""
        nominal = self.base_s + self.per_token_s * completion_tokens
        if nominal <= 0.0:
            return 0.0
        if self.jitter == 0.0:
            return nominal
        # mu = -sigma^2/2 makes the factor's mean exactly 1.
        factor = rng.lognormvariate(-(self.jitter**2) / 2.0, self.jitter)
        return nominal * factor


def parse_latency(text: str) -> LatencyModel:
    """Parse ``realistic``, ``zero`` or ``BASE_S,PER_TOKEN_S,JITTER`` (the CLI/TOML form)."""
    cleaned = text.strip().lower()
    if cleaned == "realistic":
        return LatencyModel.realistic()
    if cleaned == "zero":
        return LatencyModel.zero()
    parts = cleaned.split(",")
    if len(parts) != 3:
        raise ValueError(f"latency must be 'realistic', 'zero' or 'BASE_S,PER_TOKEN_S,JITTER', got {text!r}")
    try:
        base, per_token, jitter = (float(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"latency numbers must be floats, got {text!r}") from exc
    return LatencyModel(base, per_token, jitter)
