"""Batch image/document processing through vision chat-completions endpoints, Parquet in and out.

Public names are imported lazily so that ``batch.emulator`` (a stand-in for the foreign service)
can be imported without loading the client side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BatchError", "JobSpec", "RunSummary", "load_spec", "run_job"]

if TYPE_CHECKING:
    from .core import BatchError, JobSpec, load_spec
    from .run import RunSummary, run_job

_WHERE = {
    "BatchError": "core",
    "JobSpec": "core",
    "load_spec": "core",
    "RunSummary": "run",
    "run_job": "run",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'batch' has no attribute {name!r}")
