"""The asyncio worker pool that takes rows from the manifest through plan and send into the ledger, with progress."""

from .progress import RunSummary
from .runner import RunOptions, run_job

__all__ = ["RunOptions", "RunSummary", "run_job"]
