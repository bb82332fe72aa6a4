"""The Batch API route: the same request plan as the online route, written as JSONL shards,
submitted to Azure Global Batch, Azure v1 or OpenAI batches at half price, and merged exactly once."""

from .cancel import cancel_batches, run_batch_route

__all__ = ["cancel_batches", "run_batch_route"]
