"""A job's settings as typed, frozen dataclasses: what :func:`~.spec.load_spec` builds from a job file.

One class per table of the job file (``[input]``, ``[prompt]``, ``[endpoint]``, ...), with the defaults
the JSON Schema (``batch/data/job.schema.json``) documents. Keys are never held here: only the
*name* of the environment variable that holds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .output_format import OutputFormat

__all__ = [
    "Columns",
    "Route",
    "RunSpec",
    "DocumentsSpec",
    "EmulatorSpec",
    "EndpointKind",
    "EndpointSpec",
    "InputSpec",
    "JobSpec",
    "LimitsSpec",
    "OCR_MODES",
    "OcrMode",
    "OcrSpec",
    "OutputSpec",
    "PromptSpec",
    "RequestPacking",
    "VideoSpec",
]

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
    video_start: str = "video_start"
    video_end: str = "video_end"
    video_fps: str = "video_fps"
    video_frames: str = "video_frames"


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
    catalogue: Path | None = None  # an extra model catalogue (TOML): models the tool has no rules for
    tpm: int | None = None  # this deployment's limits in a pool ([[endpoints]], --deployment NAME:TPM:RPM);
    rpm: int | None = None  # None: the job's [limits]

    @property
    def label(self) -> str:
        """Which endpoint and deployment: the ``answered_by`` result column, the pool's messages."""
        return f"{self.deployment} @ {self.url or 'embedded emulator'}"


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
class VideoSpec:
    """How a video row's frames are sampled: ``frames`` spread evenly, else ``fps`` (default 1)
    per second, between ``start_s`` and ``end_s`` (the video's end when None)."""

    fps: float | None = None
    frames: int | None = None
    start_s: float = 0.0
    end_s: float | None = None
    long_side: int | None = 512
    detail: str = "low"
    frames_per_request: int | None = None
    max_frames: int = 1800


@dataclass(frozen=True, slots=True)
class OutputSpec:
    path: Path
    flush_rows: int = 500
    flush_seconds: float = 5.0
    retry_errors: frozenset[str] = frozenset()  # error codes re-sent on a rerun; "*": every error
    format: OutputFormat | None = None  # [output].schema / json: structured answers; None: free text


@dataclass(frozen=True, slots=True)
class EmulatorSpec:
    latency: Literal["realistic", "zero"] = "realistic"
    tpm: int | None = None


Route = Literal["online", "batch"]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """``[run]``: how rows are sent. ``route = "batch"`` goes through the Batch API (half price,
    results within 24 h); the other keys only matter there (see the README's Batch API route)."""

    route: Route = "online"
    poll_seconds: float = 60.0
    max_resubmits: int = 3
    enqueued_tokens: int | None = None  # the deployment's enqueued-token quota; None: the model's default
    delete_output_files: bool = False
    shard_lines: int | None = None  # lines per batch file; None: the service's limit


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
    video: VideoSpec = VideoSpec()
    run: RunSpec = RunSpec()
    endpoints: tuple[EndpointSpec, ...] = ()  # a pool ([[endpoints]] / repeated --deployment); () = [endpoint] alone

    @property
    def uses_embedded_emulator(self) -> bool:
        return any(ep.url is None for ep in self.deployments)

    @property
    def deployments(self) -> tuple[EndpointSpec, ...]:
        """Every deployment the run sends to: the pool, or the one ``[endpoint]``."""
        return self.endpoints or (self.endpoint,)

    @property
    def pooled_limits(self) -> tuple[int | None, int | None]:
        """TPM and RPM summed over the deployments (None where one of them has no such limit)."""
        tpms = [self.limits_for(ep).tpm for ep in self.deployments]
        rpms = [self.limits_for(ep).effective_rpm for ep in self.deployments]
        return (
            None if None in tpms else sum(t or 0 for t in tpms),
            None if None in rpms else sum(r or 0 for r in rpms),
        )

    def limits_for(self, ep: EndpointSpec) -> LimitsSpec:
        """One deployment's limits: its own tpm/rpm where given (rpm then defaults to 6 per 1000 of
        its TPM), else the job's ``[limits]``."""
        if ep.tpm is None and ep.rpm is None:
            return self.limits
        tpm = ep.tpm if ep.tpm is not None else self.limits.tpm
        rpm = ep.rpm if ep.rpm is not None else (None if ep.tpm is not None else self.limits.rpm)
        return LimitsSpec(tpm, rpm, self.limits.concurrency, self.limits.max_attempts)
