"""Steps 3-4 of a chat request: its token estimate, its admission charge and the rate-limit headers.

The estimate is what ``usage.prompt_tokens`` will report (text by the deployment's tokenizer plus
image tokens) and the max output; the charge (``charging``) is admitted against the windows
(``limits``) now, before the hold, and never refunded; a refusal is a 429 that charges nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from .answers import ReceivedImage
from .charging import ChargeInputs, compute_charge
from .errors import bad_request, rate_limited
from .limits import Admission
from .parsing import ChatRequest
from .state import DeploymentRuntime, EmulatorState
from .stats import LogEntry
from .tokens import tokenizer

__all__ = ["UsageEstimate", "admit", "current_headers", "estimate_usage"]


@dataclass(frozen=True, slots=True)
class UsageEstimate:
    prompt_tokens: int  # text + overhead + images: what usage.prompt_tokens reports
    image_tokens: int
    max_output: int  # the request's max tokens, or the model's default


def estimate_usage(runtime: DeploymentRuntime, chat: ChatRequest, images: list[ReceivedImage]) -> UsageEstimate:
    rules = runtime.rules
    image_tokens = sum(rules.image_tokens(im.info.width, im.info.height, im.detail) for im in images)
    max_output = chat.max_tokens if chat.max_tokens is not None else rules.default_max_output
    return UsageEstimate(chat.text_tokens(tokenizer(rules.tokenizer)) + image_tokens, image_tokens, max_output)


def admit(
    state: EmulatorState, runtime: DeploymentRuntime, entry: LogEntry, estimate: UsageEstimate, *, body_bytes: int
) -> dict[str, str]:
    """Step 4: charge the windows now (never refunded) or refuse with a 429 that charges nothing.
    Returns the rate-limit headers for the 200."""
    inputs = ChargeInputs(estimate.prompt_tokens, estimate.image_tokens, estimate.max_output, body_bytes)
    charge = compute_charge(state.config.charge_rule, inputs)
    dep = runtime.deployment
    if charge > dep.tpm:
        raise bad_request(
            "tokens_exceed_rate_limit",
            f"This request's estimated token charge ({charge}: prompt and images plus max output tokens) "
            f"exceeds the deployment's token rate limit of {dep.tpm} tokens per minute, so it can never be "
            "admitted. Lower max_tokens, send fewer or smaller images, or raise the deployment's TPM.",
        )
    now = state.clock()
    admission = runtime.limiter.admit(charge, now)
    headers = _limit_headers(state, runtime, admission)
    if not admission.admitted:
        refused_by = admission.refused_by or "token"
        runtime.stats.record_throttle(refused_by, now)
        raise rate_limited(
            api_version=entry.api_version or "v1",
            kind=refused_by,
            retry_after_s=admission.retry_after_s,
            headers=headers,
        )
    runtime.stats.record_admission(charge, now)
    entry.tokens_charged = charge
    return headers


def _limit_headers(state: EmulatorState, runtime: DeploymentRuntime, admission: Admission) -> dict[str, str]:
    return _headers_for(state, runtime, admission.remaining_tokens, admission.remaining_requests)


def current_headers(state: EmulatorState, runtime: DeploymentRuntime) -> dict[str, str]:
    """The rate-limit headers for a reply that admitted nothing (an injected 429)."""
    return _headers_for(state, runtime, *runtime.limiter.remaining(state.clock()))


def _headers_for(
    state: EmulatorState, runtime: DeploymentRuntime, remaining_tokens: int, remaining_requests: int
) -> dict[str, str]:
    headers = {
        "x-ratelimit-remaining-tokens": str(remaining_tokens),
        "x-ratelimit-remaining-requests": str(remaining_requests),
    }
    if state.config.send_limit_headers:
        headers["x-ratelimit-limit-tokens"] = str(runtime.deployment.tpm)
        headers["x-ratelimit-limit-requests"] = str(runtime.deployment.request_capacity)
    return headers
