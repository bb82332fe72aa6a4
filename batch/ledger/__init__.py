"""What a run has done, on disk: journal, part files, resume state, and the one assembled result file."""

from .outputs import check_output, write_failure
from .schema import RESULT_SCHEMA
from .store import ResultStore

__all__ = ["RESULT_SCHEMA", "ResultStore", "check_output", "write_failure"]
