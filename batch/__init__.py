"""Batch image/document processing through vision chat-completions endpoints, Parquet in and out.

Public names are imported lazily so that ``batch.emulator`` (a stand-in for the foreign service)
can be imported without loading the client side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BatchError", "JobSpec", "RunSummary", "load_spec", "run_job"]

if TYPE_CHECKING:
    from .errors import BatchError
    from .progress import RunSummary
    from .runner import run_job
    from .spec import JobSpec, load_spec

_WHERE = {
    "BatchError": "errors",
    "JobSpec": "spec",
    "load_spec": "spec",
    "RunSummary": "progress",
    "run_job": "runner",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'batch' has no attribute {name!r}")
