"""A loaded job adjusted from outside the file: endpoint URLs from the environment, command-line
overrides validated like the file itself, and repeated ``--deployment`` flags made into a pool."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema

from .errors import SpecError
from .output_format import schema_file_format
from .settings import EndpointSpec, JobSpec
from .spec_schema import describe_violation, schema_at

__all__ = ["apply_endpoint_env", "check_pool", "parse_deployment_flag", "with_deployments", "with_overrides"]


def check_pool(pool: tuple[EndpointSpec, ...], where: str) -> None:
    seen: set[tuple[str | None, str]] = set()
    for ep in pool:
        key = (ep.url.rstrip("/") if ep.url else None, ep.deployment)
        if key in seen:
            raise SpecError(f"{where}: deployment {ep.deployment!r} appears twice{f' at {ep.url}' if ep.url else ''}")
        seen.add(key)


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
    check_pool(pool, "--deployment")
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
        "route": ("run", "route"),
        "poll_seconds": ("run", "poll_seconds"),
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
    if "schema" in o:  # --schema FILE replaces [output].schema / json, keeping [output].flatten
        flatten = s.output.format.flatten if s.output.format is not None else False
        fmt = schema_file_format(Path(o["schema"]).resolve(), flatten=flatten)
        s = replace(s, output=replace(s.output, format=fmt))
    ep = s.endpoint
    if "endpoint" in o:
        ep = replace(ep, url=o["endpoint"])
    if "deployment" in o:
        ep = replace(ep, deployment=o["deployment"])
    if "api_version" in o:
        ep = replace(ep, api_version=o["api_version"])
    if "catalogue" in o:
        ep = replace(ep, catalogue=Path(o["catalogue"]).resolve())
    li = s.limits
    for name in ("tpm", "rpm", "concurrency"):
        if name in o:
            li = replace(li, **{name: o[name]})
    pr = s.prompt
    if "max_tokens" in o:
        pr = replace(pr, max_tokens=o["max_tokens"])
    ru = s.run
    if "route" in o:
        ru = replace(ru, route=o["route"])
    if "poll_seconds" in o:
        ru = replace(ru, poll_seconds=float(o["poll_seconds"]))
    return replace(s, endpoint=ep, limits=li, prompt=pr, run=ru)
