"""Check a run's output location before the first request, so a bad ``--out`` costs nothing.

A run writes ``<output>.parts/`` as it goes and, at the end, a temporary file in the output's folder
renamed over ``<output>``. So before anything is sent: the output must not be the manifest (not even
through a symlink or ``..``), must not be a directory, and its folder must be creatable and
writable. Writability is tested by writing, not by permission bits: root passes ``os.access`` on
``/proc`` and the bits say nothing about a read-only mount.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from ..core import LedgerError

__all__ = ["check_output", "write_failure"]


def check_output(output: Path, manifest: Path) -> None:
    """Raise LedgerError (exit 2) with one clear line if the run could not write ``output``."""
    if _same_file(output, manifest):
        raise LedgerError(f"--out {output} is the manifest itself: the run would overwrite it; choose another path")
    if output.is_dir():
        raise LedgerError(f"--out {output} is a directory; give a file path such as {output / 'results.parquet'}")
    parent = output.parent
    blocker = _file_in_the_way(parent)
    if blocker is not None:
        raise LedgerError(f"cannot write {output}: {blocker} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{output.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        where = Path(exc.filename).parent if exc.filename else parent
        raise LedgerError(f"cannot write {output}: {_reason(exc)} in {where}") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest existing ancestor of ``folder`` (itself included) if it is not a directory."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def _reason(exc: OSError) -> str:
    known = {
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOSPC: "no space left on the device",
        errno.ENOENT: "new files cannot be created",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
    }
    return known.get(exc.errno or 0, exc.strerror or str(exc))


def write_failure(output: Path, exc: OSError) -> str:
    """The message for a write that failed mid-run (disk full, mount turned read-only)."""
    return (
        f"cannot write results for {output}: {_reason(exc)}; rows already written are kept "
        "in its .parts folder: free space or fix the mount, then run the same command again to resume"
    )
