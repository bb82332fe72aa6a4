"""The model catalogue: per-model image-token rules and request settings, kept as data.

The entries live in ``batch/data/models.toml`` (shipped in the package) and are loaded once into
frozen dataclasses. A user file in the same format, passed as ``extra``, adds models or replaces
built-in entries of the same name whole::

    info = lookup_model("gpt-4o-2024-08-06")          # -> the "gpt-4o" entry
    info = lookup_model("my-vlm", Path("models.toml"))  # a model described by the user
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

from .datafiles import check_keys, read_user_file
from .errors import SpecError, UnknownModelError

__all__ = [
    "ModelInfo",
    "PatchRule",
    "TileRule",
    "Tokenizer",
    "known_models",
    "load_catalogue",
    "lookup_model",
]

Tokenizer = Literal["o200k_base", "cl100k_base"]
_TOKENIZERS: tuple[Tokenizer, ...] = ("o200k_base", "cl100k_base")
_BUILTIN = "batch/data/models.toml"


@dataclass(frozen=True, slots=True)
class TileRule:
    """Tile billing: ``base`` tokens plus ``per_tile`` for each ``tile``-px square of the scaled image."""

    base: int
    per_tile: int
    max_side: int = 2048
    short_side: int = 768
    tile: int = 512


@dataclass(frozen=True, slots=True)
class PatchRule:
    """Patch billing: ``patch``-px squares, capped at ``patch_budget``, times ``multiplier``."""

    multiplier: float
    patch_budget: int
    patch: int = 32
    max_side: int | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    image_rule: TileRule | PatchRule
    max_images: int
    uses_max_completion_tokens: bool
    default_max_output: int
    tokenizer: Tokenizer
    supports_enhancements: bool
    # Structured outputs (response_format json_schema, and JSON mode) on requests with images.
    structured_outputs: bool = False


def lookup_model(name: str, extra: Path | None = None) -> ModelInfo:
    """The catalogue entry for a model name, case-insensitively.

    An exact match wins; otherwise the longest catalogue name that, followed by ``-``, starts
    ``name`` (``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``, ``gpt-4-vision-preview`` -> ``gpt-4``).
    Raises :class:`UnknownModelError` when nothing matches.
    """
    catalogue = load_catalogue(extra)
    key = name.strip().lower()
    match = match_model_name(key, catalogue)
    if match is not None:
        return catalogue[match]
    raise UnknownModelError(
        f"unknown model {name!r}: the tool has image-token rules for {', '.join(sorted(catalogue))}. "
        f"To use another model, describe it in a TOML file in the format of {_BUILTIN} "
        f'(a [models."{key}"] table with tokenizer, max_images, default_max_output and image) '
        "and pass that file with --catalogue FILE (or [endpoint].catalogue in the job)."
    )


def match_model_name(name: str, known: Iterable[str]) -> str | None:
    """Which of ``known`` (lower-case names) a model name means, by the rule of :func:`lookup_model`.

    Shared by every per-model table (image rules, prices) so that a dated snapshot name such as
    ``gpt-4o-2024-08-06`` resolves the same way everywhere.
    """
    key = name.strip().lower()
    names = set(known)
    if key in names:
        return key
    prefixes = [k for k in names if key.startswith(k + "-")]
    return max(prefixes, key=len) if prefixes else None


def known_models(extra: Path | None = None) -> list[str]:
    """The catalogue's model names, sorted."""
    return sorted(load_catalogue(extra))


def load_catalogue(extra: Path | None = None) -> Mapping[str, ModelInfo]:
    """Built-in entries, with those of ``extra`` (if given) added or replacing them."""
    builtin = _builtin_catalogue()
    if extra is None:
        return builtin
    text = read_user_file(extra, "model catalogue")
    return {**builtin, **_parse_catalogue(text, str(extra))}


@cache
def _builtin_catalogue() -> Mapping[str, ModelInfo]:
    text = resources.files("batch").joinpath("data/models.toml").read_text(encoding="utf-8")
    return _parse_catalogue(text, _BUILTIN)


def _parse_catalogue(text: str, source: str) -> dict[str, ModelInfo]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from exc
    check_keys(doc, required={"models"}, optional=set(), where=source)
    models = doc["models"]
    if not isinstance(models, dict):
        raise SpecError(f"{source}: [models] must be a table of model tables")
    out: dict[str, ModelInfo] = {}
    for raw_name, table in models.items():
        name = raw_name.strip().lower()
        where = f'{source}: [models."{raw_name}"]'
        if not name:
            raise SpecError(f"{where}: a model name cannot be empty")
        if name in out:
            raise SpecError(f"{where}: model {name!r} is defined twice (names are case-insensitive)")
        if not isinstance(table, dict):
            raise SpecError(f"{where} must be a table")
        out[name] = _parse_model(name, table, where)
    return out


def _parse_model(name: str, table: dict[str, Any], where: str) -> ModelInfo:
    check_keys(
        table,
        required={"tokenizer", "max_images", "default_max_output", "image"},
        optional={"uses_max_completion_tokens", "supports_enhancements", "structured_outputs"},
        where=where,
    )
    tokenizer = table["tokenizer"]
    if tokenizer not in _TOKENIZERS:
        raise SpecError(f"{where}.tokenizer must be one of {', '.join(_TOKENIZERS)}, got {tokenizer!r}")
    return ModelInfo(
        name=name,
        image_rule=_parse_rule(table["image"], f"{where}.image"),
        max_images=_positive_int(table, "max_images", where),
        uses_max_completion_tokens=_bool(table, "uses_max_completion_tokens", where),
        default_max_output=_positive_int(table, "default_max_output", where),
        tokenizer=cast(Tokenizer, tokenizer),
        supports_enhancements=_bool(table, "supports_enhancements", where),
        structured_outputs=_bool(table, "structured_outputs", where),
    )


def _parse_rule(table: object, where: str) -> TileRule | PatchRule:
    if not isinstance(table, dict):
        raise SpecError(f'{where} must be a table such as {{ rule = "tile", base = 85, per_tile = 170 }}')
    rule = table.get("rule")
    if rule == "tile":
        check_keys(table, {"rule", "base", "per_tile"}, {"max_side", "short_side", "tile"}, where)
        return TileRule(
            base=_positive_int(table, "base", where),
            per_tile=_positive_int(table, "per_tile", where),
            max_side=_positive_int(table, "max_side", where, default=2048),
            short_side=_positive_int(table, "short_side", where, default=768),
            tile=_positive_int(table, "tile", where, default=512),
        )
    if rule == "patch":
        check_keys(table, {"rule", "multiplier", "patch_budget"}, {"patch", "max_side"}, where)
        multiplier = table["multiplier"]
        if isinstance(multiplier, bool) or not isinstance(multiplier, int | float) or not multiplier > 0:
            raise SpecError(f"{where}.multiplier must be a positive number, got {multiplier!r}")
        return PatchRule(
            multiplier=float(multiplier),
            patch_budget=_positive_int(table, "patch_budget", where),
            patch=_positive_int(table, "patch", where, default=32),
            max_side=_positive_int(table, "max_side", where) if "max_side" in table else None,
        )
    raise SpecError(f'{where}.rule must be "tile" or "patch", got {rule!r}')


def _positive_int(table: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f"{where}.{key} must be a positive integer, got {value!r}")
    return value


def _bool(table: Mapping[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise SpecError(f"{where}.{key} must be true or false, got {value!r}")
    return value
