"""The package's shape: layer rules kept by import-linter, public names exactly, one job per folder."""

from __future__ import annotations

import ast
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import batch

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "batch"
STAGES = ("core", "inputs", "tokens", "ocr", "plan", "send", "ledger", "run", "estimate", "report", "emulator")


def test_public_api_is_exactly_these_names() -> None:
    assert batch.__all__ == ["BatchError", "JobSpec", "RunSummary", "load_spec", "run_job"]
    for name in batch.__all__:
        assert getattr(batch, name).__name__ == name
    with pytest.raises(AttributeError):
        _ = batch.no_such_name  # type: ignore[attr-defined]


def test_the_top_level_holds_only_the_entry_points_and_the_stage_folders() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert folders == sorted([*STAGES, "cli"])


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_says_what_it_is_for_and_what_it_offers(stage: str) -> None:
    module = importlib.import_module(f"batch.{stage}")
    assert module.__doc__ and len(module.__doc__.strip()) > 40
    assert module.__all__, f"batch.{stage} exports nothing"
    for name in module.__all__:
        assert hasattr(module, name), f"batch.{stage}.__all__ names {name!r}, which it does not define"


def test_other_stages_import_a_stage_through_its_public_names() -> None:
    """``from ..send import X`` only for X in ``batch.send.__all__``; reaching into a module is for its own folder."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        depth = len(rel.parts) - 1
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.level or node.module is None:
                continue
            if node.level <= depth:
                continue  # inside its own stage folder
            stage, *rest = node.module.split(".")
            if stage not in STAGES or stage == "emulator":
                continue  # the entry points (cli) and the emulator's own public names
            names = [a.name for a in node.names]
            exported = importlib.import_module(f"batch.{stage}").__all__
            if rest or any(n not in exported for n in names):
                offenders.append(f"{rel}: from {'.' * node.level}{node.module} import {', '.join(names)}")
    assert offenders == []


def test_the_layer_contracts_hold() -> None:
    """import-linter's contracts in pyproject.toml: stage layers, and the emulator apart."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    done = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


MAX_MODULE_LINES = 320
MAX_FUNCTION_LINES = 60


def test_modules_and_functions_stay_small_enough_to_read() -> None:
    """One concept per module (about 300 lines at most) and per function (about 60)."""
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT)
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}:{node.lineno} {node.name}(): {length} lines")
    assert too_long == []
