"""Reading the TOML data tables the package ships (models, prices) and the user's additions to them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import SpecError


def read_user_file(path: Path, what: str) -> str:
    """The text of a user-supplied table file, or a SpecError naming ``what`` it was meant to be."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def check_keys(table: Mapping[str, Any], required: set[str], optional: set[str], where: str) -> None:
    """Missing and unknown keys of one table are errors that name them and what is allowed."""
    missing = sorted(required - table.keys())
    if missing:
        raise SpecError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(table.keys() - required - optional)
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise SpecError(f"{where}: unknown key {', '.join(unknown)} (allowed: {allowed})")
