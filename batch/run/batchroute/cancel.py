"""Entry points: run (or resume, or collect) a job on the batch route; cancel its active batches."""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping
from dataclasses import replace

import aiohttp

from ...core import JobSpec
from ...ledger import ShardBook
from ...send import BatchApi, Credential
from ..progress import RunSummary
from ..runner import run_job
from .route import BatchRoute
from .setup import RouteSetup

__all__ = ["cancel_batches", "run_batch_route"]


async def run_batch_route(
    spec: JobSpec,
    credential: Credential,
    *,
    detach: bool = False,
    finish_online: bool = False,
    environ: Mapping[str, str] | None = None,
) -> RunSummary:
    """Run the job through the Batch API; RunStopped if it stops early (state kept). With
    ``finish_online``, rows an expired batch left undone then go through the online route."""
    route = BatchRoute(spec, RouteSetup(spec), credential, detach=detach, finish_online=finish_online)
    try:
        summary = await route.run()
        if finish_online and not summary.complete:
            print("batch: sending what expired batches left undone through the online route", file=sys.stderr)
            online = replace(spec, run=replace(spec.run, route="online"))
            return await run_job(online, credential=credential, environ=environ, show_progress=False)
        return summary
    finally:
        close = getattr(credential, "close", None)
        if close is not None:
            await close()


async def cancel_batches(spec: JobSpec, credential: Credential) -> list[str]:
    """Ask the service to cancel every active batch of the job; the ids asked. The next run
    collects what they finished and resubmits the rest (within ``[run].max_resubmits``)."""
    setup = RouteSetup(spec)
    book = ShardBook(spec.output.path, setup.info.num_rows)
    book.open()
    cancelled = []
    async with aiohttp.ClientSession() as session:
        api = BatchApi(session, setup.target, credential, rng=random.Random())
        for record in book.active():
            if record.status in ("completed", "failed", "expired", "cancelled"):
                continue
            assert record.batch_id is not None
            await api.cancel(record.batch_id)
            cancelled.append(record.batch_id)
            print(f"batch: cancelling batch {record.batch_id} (shard {record.number})", file=sys.stderr)
    return cancelled
