"""Load and validate a job spec (``jobs/*.toml``) into typed, frozen settings.

The JSON Schema in ``batch/data/job.schema.json`` (linked from ``schemas/``) is the single source of
the allowed keys, types and defaults; this module checks a file against it, turns every violation
into a message that names the field and what is allowed, and builds the dataclasses the run uses.
Keys are never read from the file: only the *name* of the environment variable that holds one.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema

from .errors import SpecError

EndpointKind = Literal["azure", "azure-v1", "openai"]


@dataclass(frozen=True, slots=True)
class Columns:
    id: str = "id"
    image: str = "image"
    prompt: str = "prompt"
    detail: str = "detail"
    max_tokens: str = "max_tokens"
    pages: str = "pages"
    ocr: str = "ocr"


@dataclass(frozen=True, slots=True)
class InputSpec:
    manifest: Path
    base_dir: Path
    allow_outside_paths: bool = False
    batch_rows: int = 1024
    columns: Columns = Columns()
    verify_images: Literal["quick", "full"] = "quick"


@dataclass(frozen=True, slots=True)
class PromptSpec:
    user: str
    system: str = ""
    detail: str = "auto"
    max_tokens: int = 300
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    deployment: str
    model: str
    kind: EndpointKind = "azure"
    url: str | None = None
    api_version: str = "2024-10-21"
    auth: Literal["key", "entra"] = "key"
    api_key_env: str = "AZURE_OPENAI_API_KEY"
    timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class LimitsSpec:
    tpm: int | None = None
    rpm: int | None = None
    concurrency: int = 0
    max_attempts: int = 8

    @property
    def effective_rpm(self) -> int | None:
        """Azure assigns 6 RPM per 1000 TPM; an explicit rpm wins."""
        if self.rpm is not None:
            return self.rpm
        if self.tpm is not None:
            return max(1, self.tpm * 6 // 1000)
        return None


RequestPacking = Literal["per-page", "packed"]
OcrMode = Literal["off", "local", "azure-read", "azure-enhancements"]
OCR_MODES: tuple[OcrMode, ...] = ("off", "local", "azure-read", "azure-enhancements")


@dataclass(frozen=True, slots=True)
class DocumentsSpec:
    dpi: int = 200
    requests: RequestPacking = "per-page"
    pages_per_request: int | None = None
    max_pages: int = 500


@dataclass(frozen=True, slots=True)
class OcrSpec:
    mode: OcrMode = "off"
    language: str = "en"
    hint: bool = True
    vision_endpoint: str | None = None
    vision_key_env: str = "AZURE_VISION_KEY"
    read_api_version: str = "2024-02-01"
    read_tps: float = 10.0
    enhancements_api_version: str = "2023-12-01-preview"
    grounding: bool = True


@dataclass(frozen=True, slots=True)
class OutputSpec:
    path: Path
    flush_rows: int = 500
    flush_seconds: float = 5.0
    retry_errors: frozenset[str] = frozenset()  # error codes re-sent on a rerun; "*": every error


@dataclass(frozen=True, slots=True)
class EmulatorSpec:
    latency: Literal["realistic", "zero"] = "realistic"
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    source: Path
    input: InputSpec
    prompt: PromptSpec
    endpoint: EndpointSpec
    limits: LimitsSpec
    output: OutputSpec
    emulator: EmulatorSpec
    documents: DocumentsSpec = DocumentsSpec()
    ocr: OcrSpec = OcrSpec()

    @property
    def uses_embedded_emulator(self) -> bool:
        return self.endpoint.url is None


@cache
def job_schema() -> dict[str, Any]:
    text = resources.files("batch").joinpath("data/job.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _where(path: Iterable[Any]) -> str:
    parts = [str(p) for p in path]
    if not parts:
        return "the job"
    if len(parts) == 1:
        return f"[{parts[0]}]"
    return f"[{'.'.join(parts[:-1])}].{parts[-1]}"


def _schema_at(path: Iterable[Any]) -> dict[str, Any]:
    node: dict[str, Any] = job_schema()
    for p in path:
        node = node.get("properties", {}).get(str(p), {})
    return node


def _describe(err: jsonschema.ValidationError) -> str:
    """One line per violation: where, what was found, what is allowed."""
    where = _where(err.absolute_path)
    v = err.validator
    if v == "additionalProperties":
        keys = sorted(_schema_at(err.absolute_path).get("properties", {}))
        extra = sorted(set(err.instance) - set(keys)) if isinstance(err.instance, dict) else []
        table = f"[{'.'.join(str(p) for p in err.absolute_path)}]" if err.absolute_path else "the job"
        return f"unknown key {', '.join(extra)} in {table}; allowed keys: {', '.join(keys)}"
    if v == "required":
        return f"{where}: missing required key {err.message.split(' ')[0]}"
    if v == "enum":
        values = ", ".join(str(x) for x in err.validator_value)  # type: ignore[union-attr]
        return f"{where}: {err.instance!r} is not allowed; allowed values: {values}"
    if v == "type":
        return f"{where}: expected {err.validator_value}, got {type(err.instance).__name__} {err.instance!r}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return f"{where}: {err.instance!r} is out of range ({v} {err.validator_value})"
    if v == "pattern":
        return f"{where}: {err.instance!r} does not match {err.validator_value!r}"
    if v == "minLength":
        return f"{where}: must not be empty"
    return f"{where}: {err.message}"


def validate_document(doc: Mapping[str, Any], source: str) -> None:
    validator = jsonschema.Draft202012Validator(job_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n  ".join(_describe(e) for e in errors)
        raise SpecError(f"{source}: invalid job spec:\n  {lines}")


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return (p if p.is_absolute() else base / p).resolve()


def build_spec(doc: Mapping[str, Any], source: Path) -> JobSpec:
    """Build typed settings from an already-validated document."""
    base = source.parent
    inp = doc["input"]
    manifest = _resolve(base, inp["manifest"])
    input_spec = InputSpec(
        manifest=manifest,
        base_dir=_resolve(base, inp["base_dir"]) if "base_dir" in inp else manifest.parent,
        allow_outside_paths=inp.get("allow_outside_paths", False),
        batch_rows=inp.get("batch_rows", 1024),
        columns=Columns(**inp.get("columns", {})),
        verify_images=inp.get("verify_images", "quick"),
    )
    pr = doc["prompt"]
    prompt = PromptSpec(
        user=pr["user"],
        system=pr.get("system", ""),
        detail=pr.get("detail", "auto"),
        max_tokens=pr.get("max_tokens", 300),
        temperature=pr.get("temperature"),
    )
    ep = doc["endpoint"]
    kind: EndpointKind = ep.get("kind", "azure")
    default_env = "OPENAI_API_KEY" if kind == "openai" else "AZURE_OPENAI_API_KEY"
    endpoint = EndpointSpec(
        deployment=ep["deployment"],
        model=ep.get("model", ep["deployment"]),
        kind=kind,
        url=ep.get("url"),
        api_version=ep.get("api_version", "2024-10-21"),
        auth=ep.get("auth", "key"),
        api_key_env=ep.get("api_key_env", default_env),
        timeout_s=float(ep.get("timeout_s", 120.0)),
    )
    li = doc.get("limits", {})
    limits = LimitsSpec(
        tpm=li.get("tpm"),
        rpm=li.get("rpm"),
        concurrency=li.get("concurrency", 0),
        max_attempts=li.get("max_attempts", 8),
    )
    out = doc["output"]
    output = OutputSpec(
        path=_resolve(base, out["path"]),
        flush_rows=out.get("flush_rows", 500),
        retry_errors=frozenset(out.get("retry_errors", ())),
        flush_seconds=float(out.get("flush_seconds", 5.0)),
    )
    em = doc.get("emulator", {})
    emulator = EmulatorSpec(latency=em.get("latency", "realistic"), tpm=em.get("tpm"))
    do = doc.get("documents", {})
    documents = DocumentsSpec(
        dpi=do.get("dpi", 200),
        requests=do.get("requests", "per-page"),
        pages_per_request=do.get("pages_per_request"),
        max_pages=do.get("max_pages", 500),
    )
    oc = doc.get("ocr", {})
    ocr = OcrSpec(
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
    return JobSpec(source, input_spec, prompt, endpoint, limits, output, emulator, documents, ocr)


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
    if spec.endpoint.url is not None:
        return spec
    url = _env_url(environ, "OPENAI_BASE_URL" if spec.endpoint.kind == "openai" else "AZURE_OPENAI_ENDPOINT")
    if not url:
        return spec
    return replace(spec, endpoint=replace(spec.endpoint, url=url))


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
            sub = _schema_at([section, field])
            errs = list(jsonschema.Draft202012Validator(sub).iter_errors(value))
            if errs:
                raise SpecError(f"--{key.replace('_', '-')}: {_describe(errs[0]).split(': ', 1)[-1]}")
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
