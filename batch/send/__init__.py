"""Putting requests on the wire: the HTTP client, status to error mapping, the retry loop,
pacing (``ratelimit/``), the in-flight window, Azure AI Vision read."""

from .attempts import Attempts, Delivered, Failed, FailureKind, Pacing, Watch
from .auth import Credential, KeyCredential, credential_for
from .http import ChatClient, Target, fatal_advice
from .inflight import ByteBudget, LiveStats, Window
from .pacing import CallPacing, LimiterPacing
from .ratelimit.limiter import RateLimiter
from .replies import Reply
from .retry import RetryPolicy, retry_delay, should_retry
from .structured import Judged, judge
from .vision_read import AzureRead

__all__ = [
    "Attempts",
    "AzureRead",
    "ByteBudget",
    "ChatClient",
    "CallPacing",
    "Credential",
    "Failed",
    "FailureKind",
    "Judged",
    "KeyCredential",
    "LimiterPacing",
    "LiveStats",
    "Pacing",
    "RateLimiter",
    "Reply",
    "RetryPolicy",
    "Delivered",
    "Target",
    "Watch",
    "Window",
    "credential_for",
    "fatal_advice",
    "judge",
    "retry_delay",
    "should_retry",
]
