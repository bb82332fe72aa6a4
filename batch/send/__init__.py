"""Putting requests on the wire: the HTTP client, status to error mapping, the retry loop,
pacing (``ratelimit/``), the in-flight window, Azure AI Vision read."""

from .attempts import Attempts, Delivered, Failed, FailureKind, Pacing, Watch
from .http import ChatClient, Credential, KeyCredential, Reply, Target, credential_for, fatal_advice
from .inflight import ByteBudget, LiveStats, Window
from .pacing import CallPacing, LimiterPacing
from .ratelimit.limiter import RateLimiter
from .retry import RetryPolicy, retry_delay, should_retry
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
    "retry_delay",
    "should_retry",
]
