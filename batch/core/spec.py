"""Load a job spec (``jobs/*.toml``) into typed, frozen settings (:mod:`.settings`), and adjust it.

The file is checked against the JSON Schema first (:mod:`.spec_schema`: every violation is a
message naming the field), then each table becomes its dataclass with the schema's defaults and
paths resolved against the job file's folder. Endpoint URLs the job leaves out can come from the
environment (:func:`apply_endpoint_env`); command-line overrides are validated like the file
itself (:func:`with_overrides`). Keys are never read from the file: only the *name* of the
environment variable that holds one.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema

from .errors import SpecError
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
)
from .spec_schema import describe_violation, schema_at, validate_document

__all__ = [
    "apply_endpoint_env",
    "build_spec",
    "load_spec",
    "parse_deployment_flag",
    "with_deployments",
    "with_overrides",
]


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return (p if p.is_absolute() else base / p).resolve()


def build_spec(doc: Mapping[str, Any], source: Path) -> JobSpec:
    """Build typed settings from an already-validated document."""
    base = source.parent
    pool = tuple(_endpoint_spec(ep) for ep in doc.get("endpoints", ()))
    if ("endpoint" in doc) == bool(pool):
        raise SpecError(f"{source}: give either [endpoint] (one deployment) or [[endpoints]] (a pool), not both")
    _check_pool(pool, "[[endpoints]]")
    return JobSpec(
        source,
        _input_spec(doc["input"], base),
        _prompt_spec(doc["prompt"]),
        pool[0] if pool else _endpoint_spec(doc["endpoint"]),
        _limits_spec(doc.get("limits", {})),
        _output_spec(doc["output"], base),
        _emulator_spec(doc.get("emulator", {})),
        _documents_spec(doc.get("documents", {})),
        _ocr_spec(doc.get("ocr", {})),
        pool,
    )


def _check_pool(pool: tuple[EndpointSpec, ...], where: str) -> None:
    seen: set[tuple[str | None, str]] = set()
    for ep in pool:
        key = (ep.url.rstrip("/") if ep.url else None, ep.deployment)
        if key in seen:
            raise SpecError(f"{where}: deployment {ep.deployment!r} appears twice{f' at {ep.url}' if ep.url else ''}")
        seen.add(key)


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


def _endpoint_spec(ep: Mapping[str, Any]) -> EndpointSpec:
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


def apply_endpoint_env(spec: JobSpec, environ: Mapping[str, str]) -> JobSpec:
    """Fill endpoint URLs the job leaves out from the environment: AZURE_OPENAI_ENDPOINT /
    OPENAI_BASE_URL for the chat endpoint, AZURE_VISION_ENDPOINT for the Vision resource."""
    if spec.ocr.vision_endpoint is None:
        vision = _env_url(environ, "AZURE_VISION_ENDPOINT")
        if vision:
            spec = replace(spec, ocr=replace(spec.ocr, vision_endpoint=vision))
    if spec.endpoint.url is not None and all(ep.url is not None for ep in spec.endpoints):
        return spec
    url = _env_url(environ, "OPENAI_BASE_URL" if spec.endpoint.kind == "openai" else "AZURE_OPENAI_ENDPOINT")
    if not url:
        return spec
    pool = tuple(ep if ep.url is not None else replace(ep, url=url) for ep in spec.endpoints)
    return replace(spec, endpoint=pool[0] if pool else replace(spec.endpoint, url=url), endpoints=pool)


def parse_deployment_flag(text: str) -> EndpointSpec:
    """``--deployment NAME[:TPM[:RPM]]`` as a partial EndpointSpec (url and model filled in later);
    SpecError for an empty name or limits that are not whole numbers of at least 1."""
    name, *limits = text.split(":")
    if not name.strip() or len(limits) > 2:
        raise SpecError(f"--deployment {text!r}: expected NAME, NAME:TPM or NAME:TPM:RPM")
    values: list[int] = []
    for what, raw in zip(("TPM", "RPM"), limits, strict=False):
        try:
            value = int(raw)
        except ValueError:
            raise SpecError(f"--deployment {text!r}: {what} {raw!r} is not a whole number") from None
        if value < 1:
            raise SpecError(f"--deployment {text!r}: {what} must be at least 1, not {value}")
        values.append(value)
    tpm, rpm = (values + [None, None])[:2] if values else (None, None)
    return EndpointSpec(deployment=name.strip(), model="", tpm=tpm, rpm=rpm)


def with_deployments(spec: JobSpec, flags: list[str] | None) -> JobSpec:
    """Repeated ``--deployment``: one flag without limits renames the job's deployment (as before);
    several, or any with limits, make a pool of those deployments on the job's endpoint, each with
    the job's model, kind and key variable."""
    if not flags:
        return spec
    parsed = [parse_deployment_flag(f) for f in flags]
    if len(parsed) == 1 and parsed[0].tpm is None:
        return with_overrides(spec, deployment=parsed[0].deployment)
    base = spec.endpoint
    pool = tuple(replace(base, deployment=p.deployment, tpm=p.tpm, rpm=p.rpm) for p in parsed)
    _check_pool(pool, "--deployment")
    return replace(spec, endpoint=pool[0], endpoints=pool)


def _env_url(environ: Mapping[str, str], var: str) -> str | None:
    url = environ.get(var, "").strip()
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise SpecError(f"{var}: {url!r} is not an http(s) URL")
    return url


def with_overrides(spec: JobSpec, **overrides: Any) -> JobSpec:
    """Apply command-line overrides (None means not given), validated like the file itself."""
    o = {k: v for k, v in overrides.items() if v is not None}
    if not o:
        return spec
    checks: dict[str, tuple[str, str]] = {
        "endpoint": ("endpoint", "url"),
        "deployment": ("endpoint", "deployment"),
        "api_version": ("endpoint", "api_version"),
        "tpm": ("limits", "tpm"),
        "rpm": ("limits", "rpm"),
        "concurrency": ("limits", "concurrency"),
        "max_tokens": ("prompt", "max_tokens"),
        "retry_errors": ("output", "retry_errors"),
    }
    for key, value in o.items():
        if key in checks:
            section, field = checks[key]
            sub = schema_at([section, field])
            errs = list(jsonschema.Draft202012Validator(sub).iter_errors(value))
            if errs:
                raise SpecError(f"--{key.replace('_', '-')}: {describe_violation(errs[0]).split(': ', 1)[-1]}")
    s = spec
    if "manifest" in o:
        m = Path(o["manifest"]).resolve()
        s = replace(s, input=replace(s.input, manifest=m, base_dir=m.parent))
    if "out" in o:
        s = replace(s, output=replace(s.output, path=Path(o["out"]).resolve()))
    if "retry_errors" in o:
        s = replace(s, output=replace(s.output, retry_errors=s.output.retry_errors | frozenset(o["retry_errors"])))
    ep = s.endpoint
    if "endpoint" in o:
        ep = replace(ep, url=o["endpoint"])
    if "deployment" in o:
        ep = replace(ep, deployment=o["deployment"])
    if "api_version" in o:
        ep = replace(ep, api_version=o["api_version"])
    li = s.limits
    for name in ("tpm", "rpm", "concurrency"):
        if name in o:
            li = replace(li, **{name: o[name]})
    pr = s.prompt
    if "max_tokens" in o:
        pr = replace(pr, max_tokens=o["max_tokens"])
    return replace(s, endpoint=ep, limits=li, prompt=pr)
