"""What a run has done, on disk: journal, part files, resume state, and the one assembled result file."""

from .outputs import check_output, write_failure
from .schema import RESULT_SCHEMA, ResultLayout, result_layout
from .shards import LineMeta, ShardBook, ShardRecord
from .store import ResultStore
from .typed import arrow_type

__all__ = [
    "RESULT_SCHEMA",
    "LineMeta",
    "ResultLayout",
    "ResultStore",
    "ShardBook",
    "ShardRecord",
    "arrow_type",
    "check_output",
    "result_layout",
    "write_failure",
]
