"""What a run has done, on disk: journal, part files, resume state, and the one assembled result file."""

from .schema import RESULT_SCHEMA, ResultLayout, result_layout
from .store import ResultStore
from .typed import arrow_type

__all__ = ["RESULT_SCHEMA", "ResultLayout", "ResultStore", "arrow_type", "result_layout"]
