"""The emulator's configuration: deployments, limits, latency, answer size.

Everything is a frozen dataclass validated at construction, so a bad value fails when the
server is configured rather than on the first request. ``EmulatorConfig.from_toml`` reads the
same fields from a file (``batch emulator --config FILE``) and rejects unknown keys by name.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from .faults import Fault
from .latency import LatencyModel, parse_latency

__all__ = [
    "CHARGE_RULES",
    "ChargeRule",
    "Deployment",
    "EmulatorConfig",
    "WindowMode",
    "parse_deployment_spec",
]

ChargeRule = Literal["prompt+max", "max-only", "prompt-text+max", "chars+max"]
WindowMode = Literal["sliding", "fixed"]

#: How a request is charged against the token window at admission:
#: ``prompt+max``      prompt estimate (text + image tokens) + max output tokens (Azure's documented rule)
#: ``max-only``        only the max output tokens
#: ``prompt-text+max`` prompt text tokens (images not counted) + max output tokens
#: ``chars+max``       request body characters / 4 + max output tokens (a char-based estimator's view
#:                     of base64 images)
CHARGE_RULES: tuple[str, ...] = get_args(ChargeRule)
WINDOW_MODES: tuple[str, ...] = get_args(WindowMode)

#: Azure's quota ratio for chat models: every 1000 TPM of quota also grants 6 RPM.
RPM_PER_1000_TPM = 6


@dataclass(frozen=True, slots=True)
class Deployment:
    """One named deployment of a model, with its own rate-limit windows.

    ``rpm`` defaults to 6 per 1000 TPM. The request window holds ``rpm // 6`` requests (at
    least 1): Azure checks requests over 10 s periods. ``token_window_s`` and
    ``request_window_s`` exist so tests can compress time; the capacities stay the same (a
    2 s "minute" still holds ``tpm`` tokens).
    """

    name: str
    model: str
    tpm: int = 60000
    rpm: int | None = None
    token_window_s: float = 60.0
    request_window_s: float = 10.0
    #: A Global-Batch deployment: the Azure batch routes accept only these; ``enqueued_tokens``
    #: is its enqueued-token quota (None = the model's documented default, see ``batches``).
    global_batch: bool = False
    enqueued_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.enqueued_tokens is not None and self.enqueued_tokens < 1:
            raise ValueError(f"deployment {self.name!r}: enqueued_tokens must be >= 1, got {self.enqueued_tokens}")
        if not self.name or "/" in self.name:
            raise ValueError(f"deployment name must be non-empty and contain no '/', got {self.name!r}")
        if not self.model:
            raise ValueError(f"deployment {self.name!r}: model must be non-empty")
        if self.tpm < 1:
            raise ValueError(f"deployment {self.name!r}: tpm must be >= 1, got {self.tpm}")
        if self.rpm is not None and self.rpm < 1:
            raise ValueError(f"deployment {self.name!r}: rpm must be >= 1, got {self.rpm}")
        if self.token_window_s <= 0 or self.request_window_s <= 0:
            raise ValueError(f"deployment {self.name!r}: window lengths must be > 0")

    @property
    def requests_per_minute(self) -> int:
        """The effective RPM: the configured one, else 6 per 1000 TPM (at least 1)."""
        if self.rpm is not None:
            return self.rpm
        return max(1, self.tpm * RPM_PER_1000_TPM // 1000)

    @property
    def request_capacity(self) -> int:
        """Requests admitted per request window (RPM/6: the 10 s share of a minute)."""
        return max(1, self.requests_per_minute // 6)


def parse_deployment_spec(text: str) -> Deployment:
    """Parse the CLI form ``NAME=MODEL[:TPM]`` (e.g. ``vision=gpt-4o-2024-08-06:450000``)."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise ValueError(f"deployment must look like NAME=MODEL[:TPM], got {text!r}")
    model, colon, tpm_text = rest.partition(":")
    if not colon:
        return Deployment(name.strip(), model.strip())
    try:
        tpm = int(tpm_text)
    except ValueError as exc:
        raise ValueError(f"deployment TPM must be an integer, got {tpm_text!r} in {text!r}") from exc
    return Deployment(name.strip(), model.strip(), tpm=tpm)


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Server-wide settings.

    ``api_keys=None`` accepts any non-empty key (the default for local trials); a set makes
    every other key a 401. ``answer_tokens`` is the length of a full answer before any
    ``max_tokens`` truncation. ``log_limit`` bounds the in-memory request log. ``faults`` are
    the fault rules installed at start (their time windows count from server start).

    The Azure AI Vision read route (``vision``) has its own settings: ``vision_tps`` calls per
    second for the whole resource (S1 allows about 10), ``vision_api_keys`` the accepted
    ``Ocp-Apim-Subscription-Key`` values (``None`` = the same rule as ``api_keys``).
    ``ocr_threads`` is how many Tesseract engines (one per worker thread, about 80 MB each)
    serve both OCR routes.
    """

    deployments: list[Deployment]
    api_keys: frozenset[str] | None = None
    latency: LatencyModel = field(default_factory=LatencyModel.realistic)
    charge_rule: str = "prompt+max"
    seed: int = 0
    answer_tokens: int = 60
    send_limit_headers: bool = True
    window_mode: WindowMode = "sliding"
    log_limit: int = 200000
    faults: tuple[Fault, ...] = ()
    vision_tps: int = 10
    vision_api_keys: frozenset[str] | None = None
    ocr_threads: int = 2
    #: Batch API: seconds from ``validating`` to ``completed``; a batch still running after
    #: ``batch_expire_seconds`` (None = never) expires with partial results; ``max_files`` is
    #: the resource's cap on stored files uploaded without ``expires_after`` (Azure: 500).
    batch_seconds: float = 30.0
    batch_expire_seconds: float | None = None
    max_files: int = 500

    def __post_init__(self) -> None:
        if self.batch_seconds < 0 or (self.batch_expire_seconds is not None and self.batch_expire_seconds <= 0):
            raise ValueError("batch_seconds must be >= 0 and batch_expire_seconds > 0")
        if not self.deployments:
            raise ValueError("at least one deployment is required")
        object.__setattr__(self, "faults", tuple(self.faults))
        names = [d.name for d in self.deployments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate deployment names: {', '.join(duplicates)}")
        if self.charge_rule not in CHARGE_RULES:
            raise ValueError(f"charge_rule must be one of {', '.join(CHARGE_RULES)}; got {self.charge_rule!r}")
        if self.window_mode not in WINDOW_MODES:
            raise ValueError(f"window_mode must be one of {', '.join(WINDOW_MODES)}; got {self.window_mode!r}")
        if self.answer_tokens < 1:
            raise ValueError(f"answer_tokens must be >= 1, got {self.answer_tokens}")
        if self.log_limit < 0:
            raise ValueError(f"log_limit must be >= 0, got {self.log_limit}")
        for name, keys in (("api_keys", self.api_keys), ("vision_api_keys", self.vision_api_keys)):
            if keys is not None and any(not k for k in keys):
                raise ValueError(f"{name} must not contain empty strings")
        if self.vision_tps < 1:
            raise ValueError(f"vision_tps must be >= 1, got {self.vision_tps}")
        if self.ocr_threads < 1:
            raise ValueError(f"ocr_threads must be >= 1, got {self.ocr_threads}")
        for i, rule in enumerate(self.faults):
            if not isinstance(rule, Fault):
                raise ValueError(f"faults[{i}] must be a Fault, got {rule!r}")
            if rule.deployment is not None and rule.deployment not in names:
                raise ValueError(f"faults[{i}]: unknown deployment {rule.deployment!r}")

    @property
    def vision_keys(self) -> frozenset[str] | None:
        """The keys the Vision route accepts (``vision_api_keys``, else ``api_keys``)."""
        return self.vision_api_keys if self.vision_api_keys is not None else self.api_keys

    def deployment(self, name: str) -> Deployment | None:
        for dep in self.deployments:
            if dep.name == name:
                return dep
        return None

    @classmethod
    def from_toml(cls, path: str | Path) -> EmulatorConfig:
        """Read a config file. Top-level keys mirror the fields; ``[[deployments]]`` tables
        mirror ``Deployment``; ``latency`` is ``"realistic"``, ``"zero"``, ``"B,P,J"`` or a
        table ``{base_s, per_token_s, jitter}``; ``[[faults]]`` tables mirror ``Fault``. Unknown
        keys are errors naming the key."""
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "config") -> EmulatorConfig:
        _reject_unknown(data, _CONFIG_KEYS, source)
        raw_deps = data.get("deployments", [])
        if not isinstance(raw_deps, list):
            raise ValueError(f"{source}: 'deployments' must be an array of tables")
        deployments = [_deployment_from_mapping(d, f"{source}: deployments[{i}]") for i, d in enumerate(raw_deps)]
        kwargs: dict[str, Any] = {"deployments": deployments}
        if "faults" in data:
            raw_faults = data["faults"]
            if not isinstance(raw_faults, list):
                raise ValueError(f"{source}: 'faults' must be an array of tables")
            kwargs["faults"] = tuple(
                Fault.from_mapping(f, f"{source}: faults[{i}]") for i, f in enumerate(cast(list[object], raw_faults))
            )
        for name in ("api_keys", "vision_api_keys"):
            if name in data:
                keys = data[name]
                if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                    raise ValueError(f"{source}: {name!r} must be an array of strings")
                kwargs[name] = frozenset(keys)
        if "latency" in data:
            kwargs["latency"] = _latency_from_value(data["latency"], source)
        for key, typ in (
            ("charge_rule", str),
            ("seed", int),
            ("answer_tokens", int),
            ("send_limit_headers", bool),
            ("window_mode", str),
            ("log_limit", int),
            ("vision_tps", int),
            ("ocr_threads", int),
            ("max_files", int),
        ):
            if key in data:
                value = data[key]
                if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
                    raise ValueError(f"{source}: {key!r} must be of type {typ.__name__}, got {value!r}")
                kwargs[key] = value
        kwargs.update(_seconds(data, ("batch_seconds", "batch_expire_seconds"), source))
        try:
            return cls(**kwargs)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc


_CONFIG_KEYS = {
    "deployments",
    "api_keys",
    "latency",
    "charge_rule",
    "seed",
    "answer_tokens",
    "send_limit_headers",
    "window_mode",
    "log_limit",
    "faults",
    "vision_tps",
    "vision_api_keys",
    "ocr_threads",
    "batch_seconds",
    "batch_expire_seconds",
    "max_files",
}


def _seconds(data: Mapping[str, Any], keys: tuple[str, ...], source: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for key in keys:
        if key in data:
            value = data[key]
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"{source}: {key!r} must be a number of seconds, got {value!r}")
            found[key] = float(value)
    return found


def _reject_unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _deployment_from_mapping(raw: object, where: str) -> Deployment:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a table")
    table = cast(dict[str, Any], raw)
    allowed = {"name", "model", "tpm", "rpm", "token_window_s", "request_window_s", "global_batch", "enqueued_tokens"}
    _reject_unknown(table, allowed, where)
    if "name" not in table or "model" not in table:
        raise ValueError(f"{where}: 'name' and 'model' are required")
    try:
        return Deployment(
            name=str(table["name"]),
            model=str(table["model"]),
            tpm=int(table.get("tpm", 60000)),
            rpm=None if table.get("rpm") is None else int(table["rpm"]),
            token_window_s=float(table.get("token_window_s", 60.0)),
            request_window_s=float(table.get("request_window_s", 10.0)),
            global_batch=bool(table.get("global_batch", False)),
            enqueued_tokens=None if table.get("enqueued_tokens") is None else int(table["enqueued_tokens"]),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _latency_from_value(value: object, source: str) -> LatencyModel:
    if isinstance(value, str):
        try:
            return parse_latency(value)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc
    if isinstance(value, dict):
        table = cast(dict[str, Any], value)
        _reject_unknown(table, {"base_s", "per_token_s", "jitter"}, f"{source}: latency")
        try:
            return LatencyModel(
                float(table.get("base_s", 0.0)),
                float(table.get("per_token_s", 0.0)),
                float(table.get("jitter", 0.0)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: latency: {exc}") from exc
    raise ValueError(f"{source}: 'latency' must be a string or a table, got {value!r}")
