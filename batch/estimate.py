"""What a job will cost and how long it will take, before anything is sent.

:func:`estimate_job` streams the manifest once (:meth:`Manifest.items`), reads only image
headers (:func:`~batch.images.probe_image`: no pixel is decoded, no http(s) image is
downloaded) and keeps running sums, so memory stays flat whatever the manifest's size. In the
same pass it sums every what-if scenario (the job's model and a few others, each at the rows' own
detail and at ``low``/``high``/``auto``): a what-if never re-reads the manifest.

What is exact and what is assumed:

* image tokens follow the published formulas per model (:mod:`batch.vision_tokens`) from the
  header's size (a WebP's straight from its RIFF header: Pillow would read the whole file);
  ``auto`` is estimated as ``high`` (the upper bound); http(s) images are not fetched and are
  estimated at ``remote_size`` (1024x1024 by default, as the run's own limiter does); a
  ``data:`` URL is base64-decoded only as far as its header;
* text tokens are exact, with the model's tokenizer and OpenAI's chat framing
  (:mod:`batch.text_tokens`);
* completion tokens are bounded by each row's ``max_tokens``; the *expected* completion is an
  assumption, a fixed share of that bound (``expected_output``, default 60%);
* time is what the deployment's limits allow: ``max(admission tokens / TPM, requests / RPM)``,
  where Azure charges each request its prompt plus ``max_tokens`` at admission.

Rows the run would refuse (missing or corrupt image, path outside the manifest folder, bad
``detail`` or ``max_tokens``) are counted by reason and left out of the totals, as they cost
nothing. Manifest-level faults raise :class:`~batch.errors.ManifestError` as they do for a run.
Unlike ``batch run``, the estimate does not check ids for duplicates: that needs memory in
proportion to the manifest.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from .errors import ImageError, RowError, SpecError
from .images import MAX_BYTES, MAX_PIXELS, probe_image
from .manifest import Manifest
from .models import ModelInfo, lookup_model
from .payloads import RequestBuilder
from .pricing import Price, PriceTable, cost, load_prices
from .records import DETAILS, WorkItem
from .spec import JobSpec
from .text_tokens import chat_prompt_tokens
from .vision_tokens import image_tokens

__all__ = [
    "DEFAULT_COMPARE",
    "DEFAULT_EXPECTED_OUTPUT",
    "DEFAULT_REMOTE_SIZE",
    "DETAIL_MODES",
    "Costs",
    "EstimateReport",
    "ImageSources",
    "Scenario",
    "SkippedRow",
    "Totals",
    "estimate_job",
]

#: Models the what-if table compares with by default (the job's own model is left out of them).
DEFAULT_COMPARE = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini")
#: Share of ``max_tokens`` a reply is assumed to use: an assumption, shown as one.
DEFAULT_EXPECTED_OUTPUT = 0.6
#: The size an http(s) image is assumed to have (the run's limiter assumes the same).
DEFAULT_REMOTE_SIZE = (1024, 1024)
#: What-if detail settings: ``job`` keeps each row's own detail (else the job's default).
DETAIL_MODES = ("job", "low", "high", "auto")
_MAX_EXAMPLES = 5
_COMPARE_COUNT = 3
_DATA_URL = re.compile(r"^data:([\w/+.-]+);base64,", re.ASCII)
# base64 characters decoded to find a data URL's image size: PNG/GIF/WEBP headers sit in the
# first bytes, a JPEG's size after its EXIF block; the whole payload is the last resort.
_DATA_URL_PREFIXES = (4096, 131072)

ImageSource = Literal["local", "inline", "remote"]


@dataclass(frozen=True, slots=True)
class Costs:
    """USD at standard and at Batch prices: expected (assumed output share) and upper bound (max output)."""

    standard_expected: float
    standard_max: float
    batch_expected: float
    batch_max: float


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over the rows that would be sent; one request and one image per row."""

    rows: int
    images: int
    image_tokens: int
    text_tokens: int
    max_completion_tokens: int
    expected_completion_tokens: int
    costs: Costs
    minutes: float | None  # at the job's TPM/RPM; None when the job sets neither
    bound_by: Literal["tokens", "requests"] | None

    @property
    def requests(self) -> int:
        return self.rows

    @property
    def prompt_tokens(self) -> int:
        return self.image_tokens + self.text_tokens

    @property
    def admission_tokens(self) -> int:
        """What Azure charges against TPM when the requests arrive: prompt plus max output."""
        return self.prompt_tokens + self.max_completion_tokens


@dataclass(frozen=True, slots=True)
class Scenario:
    """One what-if line: the same rows on ``model`` at ``detail`` (``job`` = each row's own)."""

    model: str
    detail: str
    price: str
    totals: Totals


@dataclass(frozen=True, slots=True)
class ImageSources:
    local: int = 0  # files: size read from the header
    inline: int = 0  # data: URLs: size read from the decoded header bytes
    remote: int = 0  # http(s) URLs: not downloaded, estimated at the assumed size
    oversize: int = 0  # local files over the service's byte limit: the run downscales them


@dataclass(frozen=True, slots=True)
class SkippedRow:
    id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class EstimateReport:
    """Everything ``batch estimate`` shows; :meth:`to_dict` gives the same numbers for ``--json``."""

    job: str
    manifest: str
    deployment: str
    model: str
    catalogue_model: str
    tokenizer: str
    price: Price
    expected_output: float
    tpm: int | None
    rpm: int | None
    remote_size: tuple[int, int]
    rows_read: int
    total: Totals
    by_detail: Mapping[str, Totals]
    images: ImageSources
    skipped: Mapping[str, int]
    skipped_examples: tuple[SkippedRow, ...]
    what_if: tuple[Scenario, ...]
    addons_if_enabled: Mapping[str, float]
    notes: tuple[str, ...]

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "manifest": self.manifest,
            "deployment": self.deployment,
            "model": self.model,
            "catalogue_model": self.catalogue_model,
            "tokenizer": self.tokenizer,
            "price": _price_dict(self.price),
            "assumptions": {
                "expected_output_share": self.expected_output,
                "auto_detail_estimated_as": "high",
                "remote_image_size": list(self.remote_size),
            },
            "limits": {"tpm": self.tpm, "rpm": self.rpm},
            "rows_read": self.rows_read,
            "rows_skipped": self.rows_skipped,
            "total": _totals_dict(self.total),
            "by_detail": {d: _totals_dict(t) for d, t in self.by_detail.items()},
            "images": {
                "local": self.images.local,
                "inline": self.images.inline,
                "remote": self.images.remote,
                "oversize": self.images.oversize,
            },
            "skipped": dict(self.skipped),
            "skipped_examples": [{"id": s.id, "code": s.code, "message": s.message} for s in self.skipped_examples],
            "what_if": [
                {"model": s.model, "detail": s.detail, "price": s.price, **_totals_dict(s.totals)} for s in self.what_if
            ],
            "addons_if_enabled": dict(self.addons_if_enabled),
            "notes": list(self.notes),
        }


def estimate_job(
    spec: JobSpec,
    *,
    detail_override: str | None = None,
    model_override: str | None = None,
    compare: Sequence[str] | None = None,
    prices: Path | None = None,
    expected_output: float = DEFAULT_EXPECTED_OUTPUT,
    remote_size: tuple[int, int] = DEFAULT_REMOTE_SIZE,
) -> EstimateReport:
    """Estimate ``spec``'s tokens, cost and time in one streaming pass over its manifest.

    ``detail_override`` replaces every row's detail, ``model_override`` the job's model;
    ``compare`` names the what-if models (default: three of :data:`DEFAULT_COMPARE`), ``prices`` a
    user price file, ``expected_output`` the assumed share of ``max_tokens`` a reply uses.
    Raises :class:`SpecError`, :class:`ManifestError` or :class:`UnknownModelError` (no price, or
    no image rules, for a model) before reading any row.
    """
    if detail_override is not None and detail_override not in DETAILS:
        raise SpecError(f"detail {detail_override!r} is not allowed; allowed values: {', '.join(DETAILS)}")
    if not 0.0 <= expected_output <= 1.0:
        raise SpecError(f"expected output share must be between 0 and 1, got {expected_output}")
    if remote_size[0] < 1 or remote_size[1] < 1:
        raise SpecError(f"assumed remote image size must be positive, got {remote_size[0]}x{remote_size[1]}")
    table = load_prices(prices)
    model_name = model_override or spec.endpoint.model
    main = _Target.resolve(model_name, table)
    targets = [main, *_compare_targets(main, compare, table)]
    manifest = Manifest(spec.input.manifest, spec.input.columns, spec.input.batch_rows)

    acc = _Accumulator(spec, main, targets, detail_override, remote_size)
    for item in manifest.items():
        acc.add(item)
    return acc.report(spec, main, table, expected_output)


# --- internals --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    name: str  # as given (e.g. gpt-4o-2024-05-13): the price may depend on the date
    info: ModelInfo
    price: Price

    @classmethod
    def resolve(cls, name: str, table: PriceTable) -> _Target:
        return cls(name.strip().lower(), lookup_model(name), table.price_for(name))


def _compare_targets(main: _Target, names: Sequence[str] | None, table: PriceTable) -> list[_Target]:
    explicit = names is not None
    out: list[_Target] = []
    seen = {(main.info.name, main.price.name)}
    for name in names if names is not None else DEFAULT_COMPARE:
        target = _Target.resolve(name, table)
        key = (target.info.name, target.price.name)
        if key not in seen:
            seen.add(key)
            out.append(target)
    return out if explicit else out[:_COMPARE_COUNT]


@dataclass(slots=True)
class _Sums:
    rows: int = 0
    image_tokens: int = 0
    text_tokens: int = 0
    max_completion: int = 0


@dataclass(slots=True)
class _Accumulator:
    """Running sums for one pass; nothing here grows with the number of rows."""

    spec: JobSpec
    main: _Target
    targets: list[_Target]
    detail_override: str | None
    remote_size: tuple[int, int]
    builder: RequestBuilder = field(init=False)
    tokenizers: tuple[str, ...] = field(init=False)
    rows_read: int = 0
    by_detail: dict[str, _Sums] = field(default_factory=dict)
    # (target index, detail mode) -> image tokens; text tokens depend only on the tokenizer
    grid_images: dict[tuple[int, str], int] = field(default_factory=dict)
    text_by_tokenizer: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=lambda: {"local": 0, "inline": 0, "remote": 0, "oversize": 0})
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[SkippedRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The run's own builder resolves paths: same base folder, same outside-path rule.
        self.builder = RequestBuilder(self.spec, self.main.info, None)
        self.tokenizers = tuple(dict.fromkeys(t.info.tokenizer for t in self.targets))
        self.text_by_tokenizer = dict.fromkeys(self.tokenizers, 0)
        self.grid_images = {(i, mode): 0 for i in range(len(self.targets)) for mode in DETAIL_MODES}

    def add(self, item: WorkItem) -> None:
        self.rows_read += 1
        prompt = self.spec.prompt
        detail = self.detail_override or (item.detail if item.detail is not None else prompt.detail)
        if detail not in DETAILS:
            self._skip(item, "bad_detail", f"detail {detail!r} is not one of {', '.join(DETAILS)}")
            return
        max_out = item.max_tokens if item.max_tokens is not None else prompt.max_tokens
        if max_out < 1:
            self._skip(item, "bad_max_tokens", f"max_tokens {max_out} must be at least 1")
            return
        try:
            width, height = self._image_size(item.image)
        except RowError as exc:
            self._skip(item, exc.code, str(exc))
            return
        user_text = item.prompt if item.prompt else prompt.user
        texts = {tok: chat_prompt_tokens(prompt.system, user_text, tok) for tok in self.tokenizers}
        for tok, n in texts.items():
            self.text_by_tokenizer[tok] += n
        for i, target in enumerate(self.targets):
            per_detail = {d: _image_tokens(target.info, width, height, d) for d in DETAILS}
            for mode in DETAIL_MODES:
                self.grid_images[i, mode] += per_detail[detail if mode == "job" else mode]
        sums = self.by_detail.setdefault(detail, _Sums())
        sums.rows += 1
        sums.image_tokens += _image_tokens(self.main.info, width, height, detail)
        sums.text_tokens += texts[self.main.info.tokenizer]
        sums.max_completion += max_out

    def _image_size(self, image: str | None) -> tuple[int, int]:
        ref = (image or "").strip()
        if not ref:
            raise ImageError("the row has no image", code="image_missing")
        if ref.startswith(("http://", "https://")):
            self.sources["remote"] += 1
            return self.remote_size
        if ref.startswith("data:"):
            size = _data_url_size(ref)
            self.sources["inline"] += 1
            return size
        path = self.builder.resolve_path(ref)
        dims = _webp_header_size(path) if path.suffix.lower() == ".webp" else None
        if dims is None:
            info = probe_image(path)
            dims = info.width, info.height
        self.sources["local"] += 1
        try:
            if path.stat().st_size > MAX_BYTES:
                self.sources["oversize"] += 1
        except OSError:
            pass  # the file was just read; one vanishing now changes nothing here
        return dims

    def _skip(self, item: WorkItem, code: str, message: str) -> None:
        self.skipped[code] = self.skipped.get(code, 0) + 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(SkippedRow(item.id, code, message))

    def report(self, spec: JobSpec, main: _Target, table: PriceTable, expected: float) -> EstimateReport:
        tpm, rpm = spec.limits.tpm, spec.limits.effective_rpm
        rows = sum(s.rows for s in self.by_detail.values())
        max_out = sum(s.max_completion for s in self.by_detail.values())

        def totals(price: Price, rows: int, image_tok: int, text_tok: int, max_completion: int) -> Totals:
            return _totals(price, rows, image_tok, text_tok, max_completion, expected, tpm, rpm)

        by_detail = {
            d: totals(main.price, s.rows, s.image_tokens, s.text_tokens, s.max_completion)
            for d in DETAILS
            if (s := self.by_detail.get(d)) is not None
        }
        what_if = tuple(
            Scenario(
                target.name,
                mode,
                target.price.name,
                totals(
                    target.price,
                    rows,
                    self.grid_images[i, mode],
                    self.text_by_tokenizer[target.info.tokenizer],
                    max_out,
                ),
            )
            for i, target in enumerate(self.targets)
            for mode in DETAIL_MODES
        )
        total = what_if[0].totals  # the job's model at the rows' own details
        addons = (
            {name: addon.cost(total.images) for name, addon in sorted(table.addons.items())}
            if main.info.supports_enhancements
            else {}
        )
        sources = ImageSources(**self.sources)
        return EstimateReport(
            job=str(spec.source),
            manifest=str(spec.input.manifest),
            deployment=spec.endpoint.deployment,
            model=main.name,
            catalogue_model=main.info.name,
            tokenizer=main.info.tokenizer,
            price=main.price,
            expected_output=expected,
            tpm=tpm,
            rpm=rpm,
            remote_size=self.remote_size,
            rows_read=self.rows_read,
            total=total,
            by_detail=by_detail,
            images=sources,
            skipped=dict(sorted(self.skipped.items())),
            skipped_examples=tuple(self.examples),
            what_if=what_if,
            addons_if_enabled=addons,
            notes=tuple(_notes(spec, main, expected, sources, self.remote_size, by_detail, tpm, bool(addons))),
        )


def _totals(
    price: Price,
    rows: int,
    image_tok: int,
    text_tok: int,
    max_completion: int,
    expected: float,
    tpm: int | None,
    rpm: int | None,
) -> Totals:
    prompt = image_tok + text_tok
    expected_completion = math.ceil(max_completion * expected)
    costs = Costs(
        standard_expected=cost(prompt, expected_completion, price),
        standard_max=cost(prompt, max_completion, price),
        batch_expected=cost(prompt, expected_completion, price, batch=True),
        batch_max=cost(prompt, max_completion, price, batch=True),
    )
    by_tokens = (prompt + max_completion) / tpm if tpm else None
    by_requests = rows / rpm if rpm else None
    minutes: float | None = None
    bound: Literal["tokens", "requests"] | None = None
    if by_tokens is not None and (by_requests is None or by_tokens >= by_requests):
        minutes, bound = by_tokens, "tokens"
    elif by_requests is not None:
        minutes, bound = by_requests, "requests"
    return Totals(rows, rows, image_tok, text_tok, max_completion, expected_completion, costs, minutes, bound)


@lru_cache(maxsize=65536)
def _image_tokens(model: ModelInfo, width: int, height: int, detail: str) -> int:
    # Archives hold many images of the same few sizes: the cache saves recomputing the scaling.
    return image_tokens(model, width, height, detail)


def _webp_header_size(path: Path) -> tuple[int, int] | None:
    """A WebP file's canvas size from its first 30 bytes, or None to let Pillow decide.

    Pillow opens a WebP by reading the whole file and creating an animation decoder that
    allocates the full canvas (48 MB for a 12-megapixel photo): two thirds of an estimate's time
    on WebP-heavy manifests. The size sits in the RIFF header (VP8, VP8L or VP8X chunk); anything
    unusual (or unreadable) goes through :func:`probe_image` for its proper error.
    """
    try:
        with path.open("rb") as f:
            head = f.read(30)
    except OSError:
        return None
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    size: tuple[int, int] | None = None
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # lossy: key frame start code, then 14-bit sizes
        size = int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    elif chunk == b"VP8L" and head[20] == 0x2F:  # lossless: signature, then 14-bit sizes minus one
        bits = int.from_bytes(head[21:25], "little")
        size = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8X":  # extended: 24-bit canvas sizes minus one
        size = int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if size is None or min(size) < 1 or size[0] * size[1] > MAX_PIXELS:
        return None  # Pillow's checks give the row its proper error (e.g. image_too_large)
    return size


def _data_url_size(url: str) -> tuple[int, int]:
    """The size of a ``data:`` URL's image, decoding only as much base64 as its header needs."""
    m = _DATA_URL.match(url)
    if not m:
        raise ImageError("data URL is not of the form data:<mime>;base64,<data>", code="bad_data_url")
    start = m.end()
    payload_len = len(url) - start
    for limit in (*_DATA_URL_PREFIXES, payload_len):
        whole = limit >= payload_len
        chunk = url[start:] if whole else url[start : start + limit - limit % 4]
        try:
            raw = base64.b64decode(chunk, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("data URL holds invalid base64", code="bad_data_url") from None
        try:
            with Image.open(io.BytesIO(raw)) as im:
                return im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            if whole:
                raise ImageError("data URL does not hold an image Pillow can read", code="image_corrupt") from None
        except Image.DecompressionBombError:
            raise ImageError("data URL holds an image too large to decode", code="image_too_large") from None
    raise AssertionError("unreachable: the last attempt decodes the whole payload")


def _notes(
    spec: JobSpec,
    main: _Target,
    expected: float,
    sources: ImageSources,
    remote_size: tuple[int, int],
    by_detail: Mapping[str, Totals],
    tpm: int | None,
    addons: bool,
) -> list[str]:
    notes = [
        f"expected output is an assumption: {expected:.0%} of each row's max_tokens (--expected-output); "
        "the max columns are the upper bound",
    ]
    if "auto" in by_detail:
        notes.append("detail auto is estimated as high (the upper bound; the service may choose low for some images)")
    if sources.remote:
        notes.append(
            f"{sources.remote} http(s) image(s) not downloaded: estimated as {remote_size[0]}x{remote_size[1]} each"
        )
    if sources.oversize:
        notes.append(
            f"{sources.oversize} image file(s) over {MAX_BYTES // (1024 * 1024)} MB will be downscaled before "
            "sending; estimated at full size (an upper bound)"
        )
    if main.price.batch_derived:
        notes.append(f"Batch prices for {main.price.name} are derived as 50% of standard, not quoted")
    if spec.endpoint.kind != "openai" and not main.info.name.startswith("gpt-4o"):
        notes.append("Azure's Batch docs list image input only for GPT-4o deployments: check before choosing Batch")
    if main.info.uses_max_completion_tokens:
        notes.append(f"{main.info.name} bills reasoning tokens as output: the expected output may be low")
    if tpm is None and spec.limits.rpm is None:
        notes.append("no [limits].tpm/rpm in the job: time not estimated (pass --tpm)")
    else:
        notes.append("time is at the job's limits; Azure charges prompt + max_tokens per request at admission")
    if addons:
        notes.append(
            "add-ons: OCR and grounding cost per image if the legacy enhancements were enabled (not by this job)"
        )
    notes.append(f"prices: {main.price.name} from {main.price.source}, {main.price.date} (override with --prices FILE)")
    return notes


def _price_dict(p: Price) -> dict[str, Any]:
    return {
        "entry": p.name,
        "input": p.input,
        "cached_input": p.cached_input,
        "output": p.output,
        "batch_input": p.batch_input,
        "batch_output": p.batch_output,
        "batch_derived": p.batch_derived,
        "unit": "USD per 1M tokens",
        "source": p.source,
        "date": p.date,
    }


def _totals_dict(t: Totals) -> dict[str, Any]:
    return {
        "rows": t.rows,
        "requests": t.requests,
        "images": t.images,
        "image_tokens": t.image_tokens,
        "text_tokens": t.text_tokens,
        "prompt_tokens": t.prompt_tokens,
        "max_completion_tokens": t.max_completion_tokens,
        "expected_completion_tokens": t.expected_completion_tokens,
        "admission_tokens": t.admission_tokens,
        "cost_usd": {
            "standard_expected": t.costs.standard_expected,
            "standard_max": t.costs.standard_max,
            "batch_expected": t.costs.batch_expected,
            "batch_max": t.costs.batch_max,
        },
        "minutes": t.minutes,
        "bound_by": t.bound_by,
    }
