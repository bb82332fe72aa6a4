"""Stream a Parquet manifest into WorkItems without ever loading the whole file.

Manifest-level faults (not Parquet, missing ``id``/``image`` column, wrong column type, null or
duplicate ids) raise ManifestError before anything is sent. Row-level faults (a bad ``detail``, a
missing file) are left to the row: they become that row's error in the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..core import Columns, ManifestError, WorkItem


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _is_int(t: pa.DataType) -> bool:
    """An integer column, or a float one holding whole numbers (pandas writes an integer column
    with nulls as float64; :meth:`Manifest.check` refuses a value that is not whole)."""
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def _is_number(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


# role -> (required, type check, allowed type description)
_ROLES: dict[str, tuple[bool, Callable[[pa.DataType], bool], str]] = {
    "id": (True, lambda t: _is_text(t) or _is_int(t), "string or integer"),
    "image": (True, _is_text, "string (path, http(s) URL or data URL)"),
    "prompt": (False, _is_text, "string"),
    "detail": (False, _is_text, "string (low, high, auto, in any case)"),
    "max_tokens": (False, lambda t: _is_int(t) or pa.types.is_null(t), "integer"),
    "pages": (
        False,
        lambda t: _is_text(t) or _is_int(t) or pa.types.is_null(t),
        "string like '1-3,7', or a page number",
    ),
    "ocr": (False, lambda t: _is_text(t) or pa.types.is_null(t), "string (off, local, azure-read, azure-enhancements)"),
    "video_start": (False, lambda t: _is_number(t) or pa.types.is_null(t), "number of seconds"),
    "video_end": (False, lambda t: _is_number(t) or pa.types.is_null(t), "number of seconds"),
    "video_fps": (False, lambda t: _is_number(t) or pa.types.is_null(t), "number (frames per second)"),
    "video_frames": (False, lambda t: _is_int(t) or pa.types.is_null(t), "integer (a frame count)"),
}


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    path: Path
    num_rows: int
    columns: list[str]
    fingerprint: str


class Manifest:
    """A Parquet manifest opened for streaming. Use :meth:`check` before :meth:`items`."""

    def __init__(self, path: Path, columns: Columns | None = None, batch_rows: int = 1024) -> None:
        self.path = path
        self.columns = columns or Columns()
        self.batch_rows = batch_rows
        try:
            self._pf = pq.ParquetFile(path)
        except FileNotFoundError:
            raise ManifestError(f"manifest not found: {path}") from None
        except IsADirectoryError:
            raise ManifestError(f"manifest is a directory, not a Parquet file: {path}") from None
        except (pa.ArrowInvalid, OSError) as exc:
            raise ManifestError(f"manifest {path} is not a readable Parquet file: {exc}") from None
        self.schema: pa.Schema = self._pf.schema_arrow
        self.num_rows: int = self._pf.metadata.num_rows
        self._present: dict[str, str] = {}
        self._check_columns()

    def _check_columns(self) -> None:
        names = set(self.schema.names)
        problems = []
        for role, (required, ok, desc) in _ROLES.items():
            col = getattr(self.columns, role)
            if col not in names:
                if required:
                    problems.append(f"missing required column {col!r} (the {role} column)")
                continue
            t = self.schema.field(col).type
            if not ok(t):
                problems.append(f"column {col!r} has type {t}; expected {desc}")
            self._present[role] = col
        if problems:
            have = ", ".join(self.schema.names)
            raise ManifestError(f"manifest {self.path}: " + "; ".join(problems) + f" (columns present: {have})")

    @property
    def passthrough_columns(self) -> list[str]:
        return list(self.schema.names)

    def check(self) -> ManifestInfo:
        """One pass over the id column only: nulls and duplicates are manifest-level errors.

        Ids are hashed to 64 bits (8 bytes a row, so a 10M-row manifest costs 80 MB here, briefly);
        a hash collision is confirmed against the real values before it is reported.
        """
        for role in ("id", "max_tokens", "pages"):
            if role in self._present and pa.types.is_floating(self.schema.field(self._present[role]).type):
                self._check_whole(self._present[role], nan_is_null=role != "id")
        col = self._present["id"]
        hashes: list[np.ndarray] = []
        digest = hashlib.sha256()
        digest.update(str(self.schema).encode())
        row = 0
        for batch in self._pf.iter_batches(batch_size=65536, columns=[col]):
            arr = batch.column(0)
            if arr.null_count:
                first = row + int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
                raise ManifestError(f"manifest {self.path}: column {col!r} has a null id at row {first}")
            h = pd.util.hash_array(arr.to_numpy(zero_copy_only=False))
            hashes.append(h)
            digest.update(h.tobytes())
            row += len(arr)
        if hashes:
            allh = np.concatenate(hashes)
            order = np.sort(allh)
            dup_mask = order[1:] == order[:-1]
            if dup_mask.any():
                dups = self._confirm_duplicates(set(order[1:][dup_mask][:1000].tolist()), col)
                if dups:
                    shown = ", ".join(repr(d) for d in dups[:5])
                    more = f" (and {len(dups) - 5} more)" if len(dups) > 5 else ""
                    raise ManifestError(f"manifest {self.path}: duplicate ids in column {col!r}: {shown}{more}")
        return ManifestInfo(self.path, self.num_rows, self.schema.names, digest.hexdigest()[:32])

    def _check_whole(self, col: str, *, nan_is_null: bool) -> None:
        """A float column in an integer role: every value must be a whole number (or null)."""
        row = 0
        for batch in self._pf.iter_batches(batch_size=65536, columns=[col]):
            values = batch.column(0).to_numpy(zero_copy_only=False).astype(np.float64)
            bad = ~np.isnan(values) & ((values % 1 != 0) | ~np.isfinite(values))
            if not nan_is_null:
                bad |= np.isnan(values) & ~batch.column(0).is_null().to_numpy(zero_copy_only=False)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise ManifestError(
                    f"manifest {self.path}: column {col!r} row {row + first} holds {float(values[first])!r}, "
                    "not a whole number"
                )
            row += len(values)

    def _confirm_duplicates(self, suspects: set[int], col: str) -> list[object]:
        wanted = np.fromiter(suspects, dtype=np.uint64)
        seen: dict[object, int] = {}
        for batch in self._pf.iter_batches(batch_size=65536, columns=[col]):
            values = batch.column(0).to_numpy(zero_copy_only=False)
            for v in values[np.isin(pd.util.hash_array(values), wanted)].tolist():
                seen[v] = seen.get(v, 0) + 1
        return [v for v, n in seen.items() if n > 1]

    def items(self, skip: np.ndarray | None = None) -> Iterator[WorkItem]:
        """Yield rows in manifest order, skipping those whose index is True in ``skip``."""
        cols = [self._present[r] for r in _ROLES if r in self._present]
        role_of = {self._present[r]: r for r in _ROLES if r in self._present}
        index = 0
        for batch in self._pf.iter_batches(batch_size=self.batch_rows, columns=cols):
            n = batch.num_rows
            if skip is not None and skip[index : index + n].all():
                index += n
                continue
            data = {role_of[name]: batch.column(i).to_pylist() for i, name in enumerate(batch.schema.names)}
            for j in range(n):
                if skip is None or not skip[index + j]:
                    mt = _whole(data["max_tokens"][j]) if "max_tokens" in data else None
                    detail = data["detail"][j] if "detail" in data else None
                    yield WorkItem(
                        index=index + j,
                        id=str(_whole(data["id"][j])),
                        image=data["image"][j],
                        prompt=data["prompt"][j] if "prompt" in data else None,
                        detail=detail.lower() if isinstance(detail, str) else detail,
                        max_tokens=int(mt) if isinstance(mt, int | float) else None,
                        pages=_text_or_none(data["pages"][j]) if "pages" in data else None,
                        ocr=data["ocr"][j] if "ocr" in data else None,
                        **_video(data, j),
                    )
            index += n

    def batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        """All columns, in order, for assembling the result file."""
        yield from self._pf.iter_batches(batch_size=batch_size)


def _video(data: dict[str, list[Any]], j: int) -> dict[str, Any]:
    """A video row's sampling columns that are present and set (float seconds, int frames)."""
    out: dict[str, Any] = {}
    for role in ("video_start", "video_end", "video_fps", "video_frames"):
        value = data[role][j] if role in data else None
        if value is not None:
            out[role] = int(value) if role == "video_frames" else float(value)
    return out


def _whole(value: object) -> object:
    """A whole float (checked by :meth:`Manifest.check`) as the integer it stands for; NaN as null."""
    if isinstance(value, float):
        return None if value != value else int(value)
    return value


def _text_or_none(value: object) -> str | None:
    value = _whole(value)
    return None if value is None else str(value)
