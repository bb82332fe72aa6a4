"""Manifests: streamed, checked up front, rows yielded in order with skips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch.core.errors import ManifestError
from batch.inputs.manifest import Manifest


def write(tmp_path: Path, table: pa.Table, name: str = "m.parquet", **kw: int) -> Path:
    p = tmp_path / name
    pq.write_table(table, p, **kw)
    return p


def test_rows_in_order_with_optional_columns(tmp_path: Path) -> None:
    t = pa.table(
        {
            "id": [3, 1, 2],
            "image": ["a.png", "b.png", None],
            "detail": ["low", None, "high"],
            "max_tokens": pa.array([5, None, 7], pa.int32()),
            "extra": ["x", "y", "z"],
        }
    )
    m = Manifest(write(tmp_path, t), batch_rows=2)
    info = m.check()
    assert info.num_rows == 3
    items = list(m.items())
    assert [i.index for i in items] == [0, 1, 2]
    assert [i.id for i in items] == ["3", "1", "2"]
    assert items[0].detail == "low" and items[1].detail is None
    assert items[2].image is None and items[0].max_tokens == 5 and items[1].max_tokens is None
    assert m.passthrough_columns == ["id", "image", "detail", "max_tokens", "extra"]


def test_skip_mask(tmp_path: Path) -> None:
    n = 5000
    t = pa.table({"id": [f"r{i}" for i in range(n)], "image": ["x.png"] * n})
    m = Manifest(write(tmp_path, t, row_group_size=700), batch_rows=512)
    skip = np.zeros(n, dtype=bool)
    skip[:4990] = True
    assert [i.index for i in m.items(skip)] == list(range(4990, 5000))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"image": ["a"]}), "missing required column 'id'"),
        (pa.table({"id": ["a"]}), "missing required column 'image'"),
        (pa.table({"id": [True], "image": ["a"]}), "column 'id' has type bool"),
        (pa.table({"id": ["a"], "image": [1]}), "column 'image' has type int64"),
        (
            pa.table({"id": ["a"], "image": ["x"], "max_tokens": ["10"]}),
            "column 'max_tokens' has type string",
        ),
    ],
)
def test_bad_columns(tmp_path: Path, table: pa.Table, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest(write(tmp_path, table))


def test_float_ids_must_be_whole(tmp_path: Path) -> None:
    """Whole float ids (pandas writes them) are ids; 1.5 is refused when checked, with its row."""
    m = Manifest(write(tmp_path, pa.table({"id": [1.0, 2.0], "image": ["a", "b"]})))
    m.check()
    assert [i.id for i in m.items()] == ["1", "2"]
    bad = Manifest(write(tmp_path, pa.table({"id": [1.0, 1.5], "image": ["a", "b"]})))
    with pytest.raises(ManifestError, match="column 'id' row 1 holds 1.5, not a whole number"):
        bad.check()


def test_duplicate_and_null_ids(tmp_path: Path) -> None:
    ids = [f"r{i}" for i in range(200_000)]
    ids[150_000] = "r7"
    m = Manifest(write(tmp_path, pa.table({"id": ids, "image": ["x"] * len(ids)})))
    with pytest.raises(ManifestError, match="duplicate ids in column 'id': 'r7'"):
        m.check()
    m2 = Manifest(write(tmp_path, pa.table({"id": ["a", None], "image": ["x", "y"]}), "n.parquet"))
    with pytest.raises(ManifestError, match="null id at row 1"):
        m2.check()


def test_not_parquet_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "m.parquet"
    bad.write_text("id,image\n1,a.png\n")
    with pytest.raises(ManifestError, match="not a readable Parquet file"):
        Manifest(bad)
    with pytest.raises(ManifestError, match="manifest not found"):
        Manifest(tmp_path / "none.parquet")


def test_fingerprint_changes_with_ids(tmp_path: Path) -> None:
    a = Manifest(write(tmp_path, pa.table({"id": ["a", "b"], "image": ["x", "y"]}), "a.parquet")).check()
    b = Manifest(write(tmp_path, pa.table({"id": ["a", "c"], "image": ["x", "y"]}), "b.parquet")).check()
    c = Manifest(write(tmp_path, pa.table({"id": ["a", "b"], "image": ["z", "w"]}), "c.parquet")).check()
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == c.fingerprint  # same rows, same ids: progress stays valid
