"""Issue 13, item 17 and the README's bad-input table: the docs say what the code does."""

from __future__ import annotations

import tomllib
from pathlib import Path

from batch.ledger import RESULT_SCHEMA

ROOT = Path(__file__).resolve().parents[1]


def test_readme_says_result_files_carry_completed_at() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "completed_at" in RESULT_SCHEMA.names
    assert "which result files do not carry" not in readme
    assert "Result files carry each row's `completed_at`" in readme


def test_every_price_cites_a_public_page_and_a_date() -> None:
    table = tomllib.loads((ROOT / "batch/data/prices.toml").read_text())
    entries = [*table["prices"].values(), *table["addons"].values()]
    for entry in entries:
        assert entry["source"].startswith("https://"), entry
        assert "azure-vision-api.md" not in entry["source"]
        assert len(entry["date"]) == 10
    assert "azure-vision-api.md" not in (ROOT / "batch/data/prices.toml").read_text()


def test_readme_table_has_the_output_path_rows() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## When things go wrong") :]
    for row in ("`--out` is the manifest itself", "`--out` is an existing directory", "`--out` cannot be written"):
        assert row in table
    assert "the disk fills or the mount turns read-only mid-run" in table
