"""Batch API settings that are not plain config fields: the Global-Batch deployment spec and
the enqueued-token quotas the service documents per model."""

from __future__ import annotations

from .config import Deployment

__all__ = ["BATCH_DEPLOYMENT_TPM", "enqueued_quota", "parse_batch_deployment_spec"]

#: A Global-Batch deployment's online windows never bind: its lines are paced by the batch.
BATCH_DEPLOYMENT_TPM = 10**9


def parse_batch_deployment_spec(text: str) -> Deployment:
    """Parse ``NAME=MODEL[:ENQUEUED_TOKENS]``, a Global-Batch deployment (e.g. ``bulk=gpt-4o-2024-08-06:200000000``)."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise ValueError(f"batch deployment must look like NAME=MODEL[:ENQUEUED_TOKENS], got {text!r}")
    model, colon, quota_text = rest.partition(":")
    quota: int | None = None
    if colon:
        try:
            quota = int(quota_text)
        except ValueError as exc:
            raise ValueError(f"enqueued tokens must be an integer, got {quota_text!r} in {text!r}") from exc
    return Deployment(name.strip(), model.strip(), tpm=BATCH_DEPLOYMENT_TPM, global_batch=True, enqueued_tokens=quota)


#: Azure Global Batch default enqueued-token quotas (global-batch-limits.md), by model prefix;
#: longer prefixes first so gpt-4o-mini is not read as gpt-4o.
_DEFAULT_QUOTAS: tuple[tuple[str, int], ...] = (
    ("gpt-4o-mini", 1_000_000_000),
    ("gpt-4o", 200_000_000),
    ("gpt-4-turbo", 80_000_000),
    ("gpt-35-turbo", 1_000_000_000),
    ("gpt-4", 30_000_000),
)
_FALLBACK_QUOTA = 200_000_000


def enqueued_quota(deployment: Deployment) -> int:
    """The deployment's enqueued-token quota: its own setting, else the model's default."""
    if deployment.enqueued_tokens is not None:
        return deployment.enqueued_tokens
    for prefix, quota in _DEFAULT_QUOTAS:
        if deployment.model == prefix or deployment.model.startswith(prefix + "-"):
            return quota
    return _FALLBACK_QUOTA
