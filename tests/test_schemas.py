"""The schema files users read say what the code does."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from batch.inputs.manifest import _ROLES
from batch.ledger.schema import RESULT_SCHEMA

ROOT = Path(__file__).resolve().parents[1]


def test_result_schema_file_matches_the_writer() -> None:
    doc = json.loads((ROOT / "schemas" / "result.schema.json").read_text())
    assert list(doc["columns"]) == RESULT_SCHEMA.names
    for field in RESULT_SCHEMA:
        assert doc["columns"][field.name]["arrow_type"] == str(field.type), field.name


def test_manifest_schema_file_matches_the_reader() -> None:
    doc = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
    assert set(doc["columns"]) == set(_ROLES)
    samples = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "null": pa.null()}
    for role, (required, accepts, _desc) in _ROLES.items():
        col = doc["columns"][role]
        assert col["required"] == required, role
        for name, t in samples.items():
            assert accepts(t) == (name in col["arrow_types"]), (role, name)
