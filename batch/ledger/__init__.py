"""What a run has done, on disk: journal, part files, resume state, and the one assembled result file."""

from .schema import RESULT_SCHEMA
from .shards import LineMeta, ShardBook, ShardRecord
from .store import ResultStore

__all__ = ["RESULT_SCHEMA", "LineMeta", "ResultStore", "ShardBook", "ShardRecord"]
