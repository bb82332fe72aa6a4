"""Putting requests on the wire: the HTTP client, status to error mapping, the retry loop,
pacing (``ratelimit/``), the Files and Batch API calls, the in-flight window, Azure AI Vision read."""

from .attempts import Attempts, Delivered, Failed, FailureKind, Pacing, Watch
from .auth import Credential, KeyCredential, credential_for
from .batch_api import BatchApi, batch_line_url
from .http import ChatClient, Target, fatal_advice
from .inflight import ByteBudget, LiveStats, Window
from .pacing import CallPacing, LimiterPacing
from .ratelimit.limiter import RateLimiter
from .replies import Reply, parse_completion
from .retry import RetryPolicy, retry_delay, should_retry
from .status import make_api_error
from .structured import Judged, answer_of, judge
from .vision_read import AzureRead

__all__ = [
    "Attempts",
    "AzureRead",
    "BatchApi",
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
    "batch_line_url",
    "fatal_advice",
    "answer_of",
    "judge",
    "make_api_error",
    "parse_completion",
    "retry_delay",
    "should_retry",
]
