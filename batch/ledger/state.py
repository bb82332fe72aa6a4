"""``state.json``: which manifest a parts folder belongs to, so a resume never mixes two jobs' rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core import LedgerError
from ..inputs import ManifestInfo

__all__ = ["STATE_VERSION", "open_state"]

STATE_VERSION = 1


def open_state(parts: Path, info: ManifestInfo, columns: str | None = None) -> None:
    """Create the parts folder and its state, or check that an existing one is this manifest's
    and was written with the same result columns (``columns``: the layout's fingerprint, which a
    changed [output].schema or flatten changes)."""
    state_file = parts / "state.json"
    expected = {
        "version": STATE_VERSION,
        "manifest_rows": info.num_rows,
        "manifest_fingerprint": info.fingerprint,
    }
    if parts.exists():
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            raise LedgerError(
                f"{parts} exists but has no readable state.json: it is not this tool's, or was "
                "damaged; move it away or choose another output path"
            ) from None
        if {k: state.get(k) for k in expected} != expected:
            raise LedgerError(
                f"the saved progress in {parts} belongs to a different manifest "
                f"({state.get('manifest_rows')} rows) than {info.path} ({info.num_rows} rows, "
                "or same size with other ids/columns); delete that folder or choose another output path"
            )
        if state.get("result_columns") != columns:
            raise LedgerError(
                f"the saved progress in {parts} was written with other result columns: [output].schema "
                "(or flatten) changed since; its rows cannot be mixed with this job's. Restore the schema, "
                "or delete that folder (or choose another output path) to start over"
            )
        return
    parts.mkdir(parents=True, exist_ok=True)
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({**expected, "result_columns": columns}, indent=1))
    os.replace(tmp, state_file)
