"""What the Batch API route would make of the job: request lines, bytes (base64 images counted),
shards under the file limits, and the enqueued tokens against the deployment's quota.

Bytes are estimated from file sizes, never by encoding: a local image costs 4/3 of its size in
base64; a data URL or an http(s) URL its own length; a document's pages are rendered at run time,
so its file size stands in (an underestimate for scans rendered larger than the file). Each line
adds its prompt text and about 300 bytes of JSON framing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..core import LINES_PER_FILE, MAX_FILE_BYTES, JobSpec, default_enqueued_tokens

__all__ = ["LINE_FRAMING_BYTES", "BatchShards", "batch_shards", "render_shards"]

LINE_FRAMING_BYTES = 300


@dataclass(frozen=True, slots=True)
class BatchShards:
    requests: int
    request_bytes: int
    lines_per_file: int
    bytes_per_file: int
    shards: int
    bytes_per_shard: int
    enqueued_tokens: int  # prompt + max output of every line: what the files charge to the quota
    quota: int | None  # the job's [run].enqueued_tokens, else the model's default; None if unknown

    @property
    def waves(self) -> int | None:
        """How many rounds of shards the quota allows at once (1: all submitted together)."""
        return math.ceil(self.enqueued_tokens / self.quota) if self.quota else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "waves": self.waves}


def batch_shards(spec: JobSpec, requests: int, request_bytes: int, enqueued_tokens: int) -> BatchShards:
    """``enqueued_tokens``: prompt plus max output of every line."""
    lines = LINES_PER_FILE.get(spec.endpoint.kind, 50_000)
    if spec.run.shard_lines:
        lines = min(lines, spec.run.shard_lines)
    shards = max(math.ceil(requests / lines), math.ceil(request_bytes / MAX_FILE_BYTES)) if requests else 0
    quota = spec.run.enqueued_tokens or default_enqueued_tokens(spec.endpoint.model)
    return BatchShards(
        requests,
        request_bytes,
        lines,
        MAX_FILE_BYTES,
        shards,
        math.ceil(request_bytes / shards) if shards else 0,
        enqueued_tokens,
        quota,
    )


def render_shards(b: BatchShards) -> list[str]:
    quota = f"{b.quota:,}" if b.quota else "unknown: set [run].enqueued_tokens"
    waves = f", {b.waves} wave(s) of shards" if b.waves and b.waves > 1 else ""
    return [
        f"Batch API route: {b.requests:,} request lines in {b.shards:,} shard(s) "
        f"of at most {b.lines_per_file:,} lines; "
        f"~{b.bytes_per_shard / 1e6:,.1f} MB per shard of the {b.bytes_per_file / 1e6:.0f} MB limit; "
        f"~{b.enqueued_tokens:,} enqueued tokens against a quota of {quota}{waves}",
    ]
