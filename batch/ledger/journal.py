"""The journal: every finished row appended at once as one JSON line, so a kill loses only rows in flight.

A journal is replaced by a part file once its rows are written as one; a resumed run turns leftover
journals into parts first. A line torn by a crash (always the last) is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from ..core import LedgerError, Outcome
from .schema import DATA, ROW_FIELDS, outcome_dict, outcome_from_json

__all__ = ["Journal", "read_journal"]


class Journal:
    """The open journal file of the rows not yet written as a part."""

    def __init__(self) -> None:
        self._file: IO[str] | None = None
        self.path: Path | None = None

    def start(self, path: Path) -> None:
        """Open a new journal file for the rows that follow."""
        self.take()
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed on take

    def append(self, outcome: Outcome) -> None:
        """One line, flushed at once (call :meth:`start` first)."""
        if self._file is None:
            raise LedgerError("journal not started")
        self._file.write(json.dumps(outcome_dict(outcome), separators=(",", ":")) + "\n")
        self._file.flush()

    @property
    def is_open(self) -> bool:
        return self._file is not None

    def take(self) -> Path | None:
        """Close the journal and hand over its path; the next row starts a new one."""
        path, self.path = self.path, None
        if self._file is not None:
            self._file.close()
            self._file = None
        return path


def read_journal(path: Path, num_rows: int) -> list[Outcome]:
    """Outcomes from a journal; a line torn by a crash (always the last) is skipped."""
    rows: list[Outcome] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                d: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if set(d) - {DATA} != ROW_FIELDS or not 0 <= int(d["index"]) < num_rows:
                raise LedgerError(f"{path} has a line that is not a result row; the state is damaged")
            rows.append(outcome_from_json(d))
    return rows
