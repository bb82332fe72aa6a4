"""The price table: what a token costs per model, kept as data (``batch/data/prices.toml``).

Prices change more often than code, and popular libraries' price maps have been wrong by 5x, so
every figure carries its source and date, and a user file in the same format can add models or
replace built-in entries whole::

    table = load_prices()                        # built-in table
    table = load_prices(Path("my-prices.toml"))  # with the user's entries on top
    price = table.price_for("gpt-4o-2024-08-06") # -> the "gpt-4o" entry
    usd = cost(prompt_tokens, completion_tokens, price, batch=True)

A model with no price is an :class:`~batch.core.errors.UnknownModelError` that says how to add one:
a cost is never silently zero.
"""

from __future__ import annotations

import datetime
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from .catalogue import match_model_name
from .datafiles import check_keys, read_user_file
from .errors import SpecError, UnknownModelError

__all__ = ["AddonPrice", "Price", "PriceTable", "cost", "cost_json", "load_prices", "price_for"]

_BUILTIN = "batch/data/prices.toml"
_PER = 1_000_000  # prices are USD per 1M tokens
_BATCH_DISCOUNT = 0.5  # Azure and OpenAI Batch: 50% of standard (azure-vision-api.md §7.4)


@dataclass(frozen=True, slots=True)
class Price:
    """One model's prices in USD per 1M tokens. ``name`` is the table entry that matched."""

    name: str
    input: float
    output: float
    batch_input: float
    batch_output: float
    cached_input: float | None
    batch_derived: bool  # batch prices are the 50% rule rather than a quoted figure
    source: str
    date: str

    def as_json(self) -> dict[str, Any]:
        """This price as ``--json`` output shows it (USD per 1M tokens, with its source and date)."""
        return {
            "entry": self.name,
            "input": self.input,
            "cached_input": self.cached_input,
            "output": self.output,
            "batch_input": self.batch_input,
            "batch_output": self.batch_output,
            "batch_derived": self.batch_derived,
            "unit": "USD per 1M tokens",
            "source": self.source,
            "date": self.date,
        }


@dataclass(frozen=True, slots=True)
class AddonPrice:
    """An Azure Vision enhancement (OCR, grounding): ``usd`` per ``per`` transactions."""

    name: str
    usd: float
    per: int
    source: str
    date: str

    def cost(self, transactions: int) -> float:
        return transactions * self.usd / self.per


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Model prices and add-ons, with where they were read from (for messages)."""

    models: Mapping[str, Price]
    addons: Mapping[str, AddonPrice]
    sources: tuple[str, ...]

    def price_for(self, model_name: str) -> Price:
        """The entry for ``model_name``, case-insensitively: an exact name, else the longest entry
        name that, followed by ``-``, starts it (the rule of :func:`batch.core.catalogue.lookup_model`).

        Dated entries therefore win over their family: ``gpt-4o-2024-05-13`` has its own prices,
        while ``gpt-4o-2024-08-06`` falls back to ``gpt-4o``.
        """
        key = model_name.strip().lower()
        match = match_model_name(key, self.models)
        if match is not None:
            return self.models[match]
        raise UnknownModelError(
            f"no price for model {model_name!r}: the price table ({' + '.join(self.sources)}) has "
            f"{', '.join(sorted(self.models))}. To price it, write a TOML file with a "
            f'[prices."{key}"] table holding input and output (USD per 1M tokens), source and date '
            f"(the format of {_BUILTIN}) and pass it with --prices FILE."
        )


def price_for(model_name: str, extra: Path | None = None) -> Price:
    """Shorthand for ``load_prices(extra).price_for(model_name)``."""
    return load_prices(extra).price_for(model_name)


def cost(prompt_tokens: int, completion_tokens: int, price: Price, *, batch: bool = False) -> float:
    """USD for the given tokens at standard (or Batch) prices; image tokens count as prompt tokens."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError(f"token counts cannot be negative: {prompt_tokens}, {completion_tokens}")
    rate_in, rate_out = (price.batch_input, price.batch_output) if batch else (price.input, price.output)
    return (prompt_tokens * rate_in + completion_tokens * rate_out) / _PER


def cost_json(standard: float, batch: float) -> dict[str, float]:
    """A cost at standard and at Batch prices, as ``batch estimate``'s and ``batch report``'s JSON shows it."""
    return {"standard": standard, "batch": batch}


def load_prices(extra: Path | None = None) -> PriceTable:
    """The built-in table, with the models and add-ons of ``extra`` (if given) added or replacing."""
    builtin = _builtin_table()
    if extra is None:
        return builtin
    text = read_user_file(extra, "price file")
    user = _parse_table(text, str(extra))
    return PriceTable(
        models={**builtin.models, **user.models},
        addons={**builtin.addons, **user.addons},
        sources=(*builtin.sources, str(extra)),
    )


@cache
def _builtin_table() -> PriceTable:
    text = resources.files("batch").joinpath("data/prices.toml").read_text(encoding="utf-8")
    return _parse_table(text, _BUILTIN)


def _parse_table(text: str, source: str) -> PriceTable:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from exc
    check_keys(doc, set(), {"prices", "addons"}, source)
    models: dict[str, Price] = {}
    for raw, table in _tables(doc, "prices", source).items():
        name = raw.strip().lower()
        where = f'{source}: [prices."{raw}"]'
        if not name:
            raise SpecError(f"{where}: a model name cannot be empty")
        if name in models:
            raise SpecError(f"{where}: model {name!r} is priced twice (names are case-insensitive)")
        models[name] = _parse_price(name, table, where)
    addons: dict[str, AddonPrice] = {}
    for raw, table in _tables(doc, "addons", source).items():
        where = f"{source}: [addons.{raw}]"
        check_keys(table, {"usd", "per", "source", "date"}, set(), where)
        per = table["per"]
        if isinstance(per, bool) or not isinstance(per, int) or per <= 0:
            raise SpecError(f"{where}.per must be a positive integer, got {per!r}")
        addons[raw.strip().lower()] = AddonPrice(
            raw.strip().lower(),
            _usd(table, "usd", where),
            per,
            _text(table, "source", where),
            _text(table, "date", where),
        )
    return PriceTable(models, addons, (source,))


def _parse_price(name: str, table: dict[str, Any], where: str) -> Price:
    check_keys(
        table,
        {"input", "output", "source", "date"},
        {"cached_input", "batch_input", "batch_output", "batch_derived"},
        where,
    )
    given = [k for k in ("batch_input", "batch_output") if k in table]
    if len(given) == 1:
        raise SpecError(f"{where}: give both batch_input and batch_output, or neither (then both are half price)")
    quoted = len(given) == 2
    derived = table.get("batch_derived", not quoted)
    if not isinstance(derived, bool):
        raise SpecError(f"{where}.batch_derived must be true or false, got {derived!r}")
    inp, out = _usd(table, "input", where), _usd(table, "output", where)
    return Price(
        name=name,
        input=inp,
        output=out,
        batch_input=_usd(table, "batch_input", where) if quoted else inp * _BATCH_DISCOUNT,
        batch_output=_usd(table, "batch_output", where) if quoted else out * _BATCH_DISCOUNT,
        cached_input=_usd(table, "cached_input", where) if "cached_input" in table else None,
        batch_derived=derived or not quoted,
        source=_text(table, "source", where),
        date=_text(table, "date", where),
    )


def _tables(doc: Mapping[str, Any], key: str, source: str) -> dict[str, dict[str, Any]]:
    tables = doc.get(key, {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise SpecError(f"{source}: [{key}] must be a table of tables, one per name")
    return tables


def _usd(table: Mapping[str, Any], key: str, where: str) -> float:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise SpecError(f"{where}.{key} must be a non-negative number of USD, got {value!r}")
    return float(value)


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table[key]
    if isinstance(value, datetime.date):  # a bare TOML date: date = 2025-11-01
        return value.isoformat()
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}.{key} must be a non-empty string, got {value!r}")
    return value


class CostMeter:
    """Cost so far from billed usage, at the price of the model that answered.

    The service may name a snapshot the table lacks (``gpt-4o-2024-11-20``): then the job's model
    prices it. A model with no price at all is remembered in ``unpriced`` and costs nothing here.
    """

    def __init__(self, prices: PriceTable, job_model: str) -> None:
        self._prices = prices
        self._job_model = job_model
        self._cache: dict[str, Price | None] = {}
        self.unpriced: set[str] = set()

    def add(self, model: str | None, prompt_tokens: int | None, completion_tokens: int | None) -> tuple[float, float]:
        """(standard, Batch API) cost of one reply's usage."""
        if prompt_tokens is None and completion_tokens is None:
            return 0.0, 0.0
        name = model or self._job_model
        if name not in self._cache:
            self._cache[name] = self._lookup(name)
        price = self._cache[name]
        if price is None:
            self.unpriced.add(name)
            return 0.0, 0.0
        p, c = prompt_tokens or 0, completion_tokens or 0
        return cost(p, c, price), cost(p, c, price, batch=True)

    def _lookup(self, name: str) -> Price | None:
        for candidate in (name, self._job_model):
            try:
                return self._prices.price_for(candidate)
            except UnknownModelError:
                continue
        return None
