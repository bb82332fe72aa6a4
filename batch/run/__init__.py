"""The asyncio worker pool that takes rows from the manifest through plan and send into the ledger, with progress;
or, on the batch route, as JSONL shards through the Batch API."""

from .batchroute import cancel_batches, run_batch_route
from .progress import RunSummary
from .runner import RunOptions, run_job

__all__ = ["RunOptions", "RunSummary", "cancel_batches", "run_batch_route", "run_job"]
