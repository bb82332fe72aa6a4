"""How many tokens a request is charged at admission, under each configurable rule.

Azure documents only that the admission estimate covers the prompt and ``max_tokens``, and
that it is partly based on character counts; how images enter it is unknown. The rules let a
benchmark measure a client against each plausible answer (see ``config.CHARGE_RULES``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ChargeInputs", "compute_charge"]


@dataclass(frozen=True, slots=True)
class ChargeInputs:
    prompt_tokens: int  # text + per-message overhead + image tokens
    image_tokens: int
    max_output: int  # the request's max tokens, or the model's default when absent
    body_bytes: int  # raw request body length (base64 is ASCII: bytes == characters)


def compute_charge(rule: str, inputs: ChargeInputs) -> int:
    if rule == "prompt+max":
        return inputs.prompt_tokens + inputs.max_output
    if rule == "max-only":
        return inputs.max_output
    if rule == "prompt-text+max":
        return inputs.prompt_tokens - inputs.image_tokens + inputs.max_output
    if rule == "chars+max":
        return math.ceil(inputs.body_bytes / 4) + inputs.max_output
    raise ValueError(f"unknown charge rule {rule!r}")
