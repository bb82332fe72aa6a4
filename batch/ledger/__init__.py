"""What a run has done, on disk: journal, part files, resume state, and the one assembled result file."""

from .store import RESULT_SCHEMA, ResultStore

__all__ = ["RESULT_SCHEMA", "ResultStore"]
