"""Import direction: the client side never reaches into the emulator, and low layers stay low."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "batch"

# module -> batch modules it may import (relative names)
ALLOWED = {
    "errors": set(),
    "records": set(),
    "spec": {"errors"},
    "models": {"datafiles", "errors"},
    "datafiles": {"errors"},
    "vision_tokens": {"models", "errors"},
    "image_walk": set(),
    "images": {"errors", "image_walk"},
    "retry": {"errors"},
    "ratelimit": {"errors", "ratelimit_burst", "ratelimit_charge", "ratelimit_headers"},
    "ratelimit_charge": set(),
    "ratelimit_burst": set(),
    "ratelimit_headers": set(),
    "ratelimit_calls": set(),
    "text_tokens": {"errors"},
    "pricing": {"datafiles", "errors", "models"},
    "payloads": {"errors", "images", "models", "records", "spec", "text_tokens", "vision_tokens"},
    "manifest": {"errors", "records", "spec"},
    "client": {"errors", "records", "retry", "spec"},
    "results": {"errors", "manifest", "records"},
    "progress": {"records"},
    "documents": {"errors", "images", "page_ranges"},
    "page_ranges": {"errors"},
    "ocr_text": set(),
    "ocr_glyphs": set(),
    "ocr_digits": {"ocr_glyphs"},
    "ocr": {"errors", "ocr_digits", "ocr_glyphs", "ocr_text"},
    "inflight": set(),
    "ocr_service": {"client", "errors", "ocr", "ratelimit_calls", "retry", "spec"},
    "paged": {
        "documents",
        "errors",
        "images",
        "models",
        "ocr_service",
        "ocr_text",
        "payloads",
        "records",
        "retry",
        "spec",
    },
    "money": {"pricing"},
    "estimate_model": {"money", "pricing"},
    "estimate_probe": {"errors", "images"},
    "estimate_scan": {
        "documents",
        "errors",
        "estimate_model",
        "estimate_probe",
        "images",
        "models",
        "payloads",
        "pricing",
        "records",
        "spec",
        "text_tokens",
        "vision_tokens",
    },
    "estimate": {
        "errors",
        "estimate_model",
        "estimate_probe",
        "estimate_scan",
        "images",
        "manifest",
        "pricing",
        "records",
        "spec",
    },
    "estimate_render": {"estimate"},
    "streamstats": set(),
    "report_model": {"money", "pricing", "streamstats"},
    "report_stream": {"errors", "pricing", "report_model", "streamstats"},
    "report_build": {"pricing", "report_model", "report_stream"},
    "report": {"pricing", "report_build", "report_model", "report_stream", "results"},
    "report_render": {"report_model"},
    "report_svg": set(),
    "report_html": {"report", "report_model", "report_render", "report_svg"},
}


def batch_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(a.name for a in node.names)
            elif node.module and node.module.startswith("batch."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("batch."))
    return found


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_module_imports_only_lower_layers(module: str) -> None:
    assert batch_imports(PKG / f"{module}.py") <= ALLOWED[module]


def test_only_the_cli_knows_the_emulator() -> None:
    users = {p.stem for p in PKG.glob("*.py") if "emulator" in batch_imports(p)}
    assert users == {"cli"}


def test_every_module_has_a_place_in_the_layers() -> None:
    top = {"__init__", "__main__", "cli", "runner"}  # the entry points may use everything
    assert {p.stem for p in PKG.glob("*.py")} - top <= set(ALLOWED)
