"""Load a job spec (``jobs/*.toml``) into typed, frozen settings (:mod:`.settings`).

The file is checked against the JSON Schema first (:mod:`.spec_schema`: every violation is a
message naming the field), then each table becomes its dataclass with the schema's defaults and
paths resolved against the job file's folder (adjusting it afterwards, from the environment or the
command line, is :mod:`.overrides`). Keys are never read from the file: only the *name* of the
environment variable that holds one.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import SpecError
from .output_format import load_output_format
from .overrides import check_pool
from .settings import (
    Columns,
    DocumentsSpec,
    EmulatorSpec,
    EndpointKind,
    EndpointSpec,
    InputSpec,
    JobSpec,
    LimitsSpec,
    OcrSpec,
    OutputSpec,
    PromptSpec,
    RunSpec,
    VideoSpec,
)
from .spec_schema import validate_document

__all__ = ["build_spec", "load_spec"]


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return (p if p.is_absolute() else base / p).resolve()


def build_spec(doc: Mapping[str, Any], source: Path) -> JobSpec:
    """Build typed settings from an already-validated document."""
    base = source.parent
    pool = tuple(_endpoint_spec(ep, base) for ep in doc.get("endpoints", ()))
    if ("endpoint" in doc) == bool(pool):
        raise SpecError(f"{source}: give either [endpoint] (one deployment) or [[endpoints]] (a pool), not both")
    check_pool(pool, "[[endpoints]]")
    return JobSpec(
        source,
        _input_spec(doc["input"], base),
        _prompt_spec(doc["prompt"]),
        pool[0] if pool else _endpoint_spec(doc["endpoint"], base),
        _limits_spec(doc.get("limits", {})),
        _output_spec(doc["output"], base),
        _emulator_spec(doc.get("emulator", {})),
        _documents_spec(doc.get("documents", {})),
        _ocr_spec(doc.get("ocr", {})),
        _video_spec(doc.get("video", {})),
        _run_spec(doc.get("run", {})),
        pool,
    )


def _input_spec(inp: Mapping[str, Any], base: Path) -> InputSpec:
    manifest = _resolve(base, inp["manifest"])
    return InputSpec(
        manifest=manifest,
        base_dir=_resolve(base, inp["base_dir"]) if "base_dir" in inp else manifest.parent,
        allow_outside_paths=inp.get("allow_outside_paths", False),
        batch_rows=inp.get("batch_rows", 1024),
        columns=Columns(**inp.get("columns", {})),
        verify_images=inp.get("verify_images", "quick"),
    )


def _prompt_spec(pr: Mapping[str, Any]) -> PromptSpec:
    return PromptSpec(
        user=pr["user"],
        system=pr.get("system", ""),
        detail=pr.get("detail", "auto"),
        max_tokens=pr.get("max_tokens", 300),
        temperature=pr.get("temperature"),
    )


def _endpoint_spec(ep: Mapping[str, Any], base: Path) -> EndpointSpec:
    kind: EndpointKind = ep.get("kind", "azure")
    default_env = "OPENAI_API_KEY" if kind == "openai" else "AZURE_OPENAI_API_KEY"
    return EndpointSpec(
        deployment=ep["deployment"],
        model=ep.get("model", ep["deployment"]),
        kind=kind,
        url=ep.get("url"),
        api_version=ep.get("api_version", "2024-10-21"),
        auth=ep.get("auth", "key"),
        api_key_env=ep.get("api_key_env", default_env),
        timeout_s=float(ep.get("timeout_s", 120.0)),
        catalogue=_resolve(base, ep["catalogue"]) if "catalogue" in ep else None,
        tpm=ep.get("tpm"),
        rpm=ep.get("rpm"),
    )


def _limits_spec(li: Mapping[str, Any]) -> LimitsSpec:
    return LimitsSpec(
        tpm=li.get("tpm"),
        rpm=li.get("rpm"),
        concurrency=li.get("concurrency", 0),
        max_attempts=li.get("max_attempts", 8),
    )


def _output_spec(out: Mapping[str, Any], base: Path) -> OutputSpec:
    return OutputSpec(
        path=_resolve(base, out["path"]),
        flush_rows=out.get("flush_rows", 500),
        retry_errors=frozenset(out.get("retry_errors", ())),
        flush_seconds=float(out.get("flush_seconds", 5.0)),
        format=load_output_format(out, base),
    )


def _emulator_spec(em: Mapping[str, Any]) -> EmulatorSpec:
    return EmulatorSpec(latency=em.get("latency", "realistic"), tpm=em.get("tpm"))


def _documents_spec(do: Mapping[str, Any]) -> DocumentsSpec:
    return DocumentsSpec(
        dpi=do.get("dpi", 200),
        requests=do.get("requests", "per-page"),
        pages_per_request=do.get("pages_per_request"),
        max_pages=do.get("max_pages", 500),
    )


def _ocr_spec(oc: Mapping[str, Any]) -> OcrSpec:
    return OcrSpec(
        mode=oc.get("mode", "off"),
        language=oc.get("language", "en"),
        hint=oc.get("hint", True),
        vision_endpoint=oc.get("vision_endpoint"),
        vision_key_env=oc.get("vision_key_env", "AZURE_VISION_KEY"),
        read_api_version=oc.get("read_api_version", "2024-02-01"),
        read_tps=float(oc.get("read_tps", 10.0)),
        enhancements_api_version=oc.get("enhancements_api_version", "2023-12-01-preview"),
        grounding=oc.get("grounding", True),
    )


def _video_spec(vi: Mapping[str, Any]) -> VideoSpec:
    end = vi.get("end")
    return VideoSpec(
        fps=float(vi["fps"]) if "fps" in vi else None,
        frames=vi.get("frames"),
        start_s=float(vi.get("start", 0.0)),
        end_s=float(end) if end is not None else None,
        long_side=vi.get("long_side", 512),
        detail=vi.get("detail", "low"),
        frames_per_request=vi.get("frames_per_request"),
        max_frames=vi.get("max_frames", 1800),
    )


def _run_spec(ru: Mapping[str, Any]) -> RunSpec:
    return RunSpec(
        route=ru.get("route", "online"),
        poll_seconds=float(ru.get("poll_seconds", 60.0)),
        max_resubmits=ru.get("max_resubmits", 3),
        enqueued_tokens=ru.get("enqueued_tokens"),
        delete_output_files=ru.get("delete_output_files", False),
        shard_lines=ru.get("shard_lines"),
    )


def load_spec(path: str | Path) -> JobSpec:
    """Read, validate and build a job spec. Raises SpecError with every problem listed."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"job file not found: {p}") from None
    except OSError as exc:
        raise SpecError(f"cannot read job file {p}: {exc.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{p}: not valid TOML: {exc}") from None
    validate_document(doc, str(p))
    return build_spec(doc, p.resolve())
