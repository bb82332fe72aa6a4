"""Issue 13, items 1-3: a bad output location is refused before anything is sent; a disk that fills
mid-run stops the run (exit 1) with a clear message and keeps every row already written.

End to end: the CLI, the real emulator over loopback, a real file system (tmpfs mounts made by the
test where the machine allows it).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import EmbeddedEmulator
from tests.support import Sample
from tests.test_run import chat_requests


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` for the test, or a skip saying why it could not be."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def refused(
    capsys: pytest.CaptureFixture[str], emulator: EmbeddedEmulator, job: Path, out: str | Path, *more: str
) -> str:
    """Run with ``--out``; assert exit 2, nothing sent, one line and no traceback; return that line."""
    capsys.readouterr()
    assert main(["run", str(job), "--no-progress", "--out", str(out), *more]) == 2
    err = capsys.readouterr().err
    assert chat_requests(emulator) == []
    assert "Traceback" not in err and "embedded emulator" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_out_equal_to_the_manifest_is_refused_even_through_a_symlink_or_dotdot(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 4)
    job = s.job(emulator.url)
    before = s.manifest.read_bytes()
    (tmp_path / "link.parquet").symlink_to(s.manifest)
    (tmp_path / "sub").mkdir()
    for out in (s.manifest, tmp_path / "link.parquet", tmp_path / "sub" / ".." / "manifest.parquet"):
        assert "is the manifest itself" in refused(capsys, emulator, job, out)
    assert s.manifest.read_bytes() == before
    assert not list(tmp_path.glob("*.parts"))


def test_out_an_existing_directory_is_refused_before_sending(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 4)
    folder = tmp_path / "some" / "folder"
    folder.mkdir(parents=True)
    line = refused(capsys, emulator, s.job(emulator.url), folder)
    assert "is a directory" in line and str(folder / "results.parquet") in line
    assert not (tmp_path / "some" / "folder.parts").exists()


@pytest.mark.parametrize(
    ("where", "said"),
    [("/proc/x.parquet", "new files cannot be created in /proc"), ("FILE/x.parquet", "is a file, not a folder")],
    ids=["proc", "under-a-file"],
)
def test_unwritable_locations_are_refused_with_one_line(
    tmp_path: Path,
    emulator: EmbeddedEmulator,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    where: str,
    said: str,
) -> None:
    s = Sample(tmp_path, 3)
    (tmp_path / "FILE").write_text("a regular file")
    out = where.replace("FILE", str(tmp_path / "FILE"))
    assert said in refused(capsys, emulator, s.job(emulator.url), out)


def test_a_read_only_mount_is_refused(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 3)
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        line = refused(capsys, emulator, s.job(emulator.url), ro / "deep" / "results.parquet")
    assert "read-only" in line


def test_disk_full_mid_run_stops_with_exit_1_and_the_rerun_finishes(
    tmp_path: Path, emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 60)
    job = s.job(emulator.url, extra="[limits]\nconcurrency = 2\n")
    with tmpfs(tmp_path / "small", "size=96k") as small:
        out = small / "results.parquet"
        assert main(["run", str(job), "--no-progress", "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert "no space left on the device" in err and "run the same command again to resume" in err
        assert "Traceback" not in err
        parts = Path(f"{out}.parts")
        kept = sum(pq.read_metadata(p).num_rows for p in parts.glob("b*.parquet"))
        lines = [line for j in parts.glob("journal-*.jsonl") for line in j.read_text().splitlines()]
        journalled = sum(map(_whole, lines))
        assert 0 < kept + journalled < 60
        sent_before = len(chat_requests(emulator))
        subprocess.run(["mount", "-o", "remount,size=8m", str(small)], check=True)
        assert main(["run", str(job), "--no-progress", "--out", str(out)]) == 0
        result = pq.read_table(out, columns=["id", "status"]).to_pylist()
    assert [r["id"] for r in result] == [f"row-{i}" for i in range(60)]
    assert {r["status"] for r in result} == {"ok"}
    # rows already written (parts or journal) were not sent again
    assert len(chat_requests(emulator)) - sent_before == 60 - kept - journalled


def _whole(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
