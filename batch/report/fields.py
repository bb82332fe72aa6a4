"""How often each field of a structured answer is filled: the ``data`` column of a run with a schema.

Read in record batches with the rest of the report (bounded memory). A field is *filled* when it
is not null, and, for a string or a list, not empty. Fields outside lists count over the rows that
have data (status ok); fields inside a list (``rows[].amount``) count over that list's items.
The paths follow the column's Arrow type (:mod:`batch.ledger.typed`), so nested fields read as
``data.total``, ``data.rows[].amount`` would in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DATA_COLUMN", "FieldFill", "FieldLine"]

DATA_COLUMN = "data"


@dataclass(frozen=True, slots=True)
class FieldLine:
    """One schema field: its path, and in how many of ``of`` rows (or list items) it is filled."""

    path: str
    filled: int
    of: int

    @property
    def share(self) -> float | None:
        return self.filled / self.of if self.of else None


@dataclass(slots=True)
class FieldFill:
    """Running counts per field path, in schema order; nothing grows with the rows."""

    rows: int = 0  # rows with data
    counts: dict[str, list[int]] = field(default_factory=dict)  # path -> [filled, of]

    def add(self, column: pa.Array | pa.ChunkedArray) -> None:
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if not pa.types.is_struct(arr.type):
            return
        present = arr.filter(arr.is_valid())
        self.rows += len(present)
        self._struct(present, "")

    def _struct(self, arr: pa.StructArray, prefix: str) -> None:
        for i, f in enumerate(arr.type):
            child = pc.struct_field(arr, [i])
            path = f"{prefix}{f.name}"
            self._count(path, child)
            if pa.types.is_struct(f.type):
                self._struct(child.filter(child.is_valid()), f"{path}.")
            elif pa.types.is_list(f.type) and pa.types.is_struct(f.type.value_type):
                items = pc.list_flatten(child)
                self._struct(items.filter(items.is_valid()), f"{path}[].")

    def _count(self, path: str, values: pa.Array) -> None:
        filled = values.is_valid()
        if pa.types.is_string(values.type):
            filled = pc.and_(filled, pc.not_equal(pc.utf8_length(values), 0))
        elif pa.types.is_list(values.type):
            filled = pc.and_(filled, pc.greater(pc.list_value_length(values), 0))
        entry = self.counts.setdefault(path, [0, 0])
        entry[0] += int(pc.sum(pc.fill_null(filled, False)).as_py() or 0)
        entry[1] += len(values)

    def lines(self) -> tuple[FieldLine, ...]:
        return tuple(FieldLine(path, filled, of) for path, (filled, of) in self.counts.items())
