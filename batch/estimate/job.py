"""What a job will cost and how long it will take, before anything is sent.

:func:`estimate_job` streams the manifest once (:meth:`Manifest.items`), reads only image
headers (:func:`~batch.inputs.images.probe_image`: no pixel is decoded, no http(s) image is
downloaded) and keeps running sums, so memory stays flat whatever the manifest's size. In the
same pass it sums every what-if scenario (the job's model and a few others, each at the rows' own
detail and at ``low``/``high``/``auto``): a what-if never re-reads the manifest.

What is exact and what is assumed:

* image tokens follow the published formulas per model (:mod:`batch.tokens.image`) from the
  header's size (a WebP's straight from its RIFF header: Pillow would read the whole file);
  ``auto`` is estimated as ``high`` (the upper bound); http(s) images are not fetched and are
  estimated at ``remote_size`` (1024x1024 by default, as the run's own limiter does); a
  ``data:`` URL is base64-decoded only as far as its header;
* text tokens are exact, with the model's tokenizer and OpenAI's chat framing
  (:mod:`batch.tokens.text`);
* completion tokens are bounded by each row's ``max_tokens``; the *expected* completion is an
  assumption, a fixed share of that bound (``expected_output``, default 60%);
* time is what the deployment's limits allow: ``max(admission tokens / TPM, requests / RPM)``,
  where Azure charges each request its prompt plus ``max_tokens`` at admission.

Rows the run would refuse (missing or corrupt image, path outside the manifest folder, bad
``detail`` or ``max_tokens``) are counted by reason and left out of the totals, as they cost
nothing. Manifest-level faults raise :class:`~batch.core.errors.ManifestError` as they do for a run.
Unlike ``batch run``, the estimate does not check ids for duplicates: that needs memory in
proportion to the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

from ..core import DETAILS, JobSpec, Price, PriceTable, SpecError, cost, load_prices
from ..inputs import MAX_BYTES, Manifest
from .hint import DEFAULT_OCR_SAMPLE
from .model import (
    DEFAULT_EXPECTED_OUTPUT,
    DEFAULT_REMOTE_SIZE,
    DETAIL_MODES,
    Costs,
    EstimateReport,
    ImageSources,
    Scenario,
    Totals,
)
from .scan import PricedModel, Scan, Sums, compare_targets
from .shards import batch_shards

__all__ = ["estimate_job"]


def estimate_job(
    spec: JobSpec,
    *,
    detail_override: str | None = None,
    model_override: str | None = None,
    compare: Sequence[str] | None = None,
    prices: Path | None = None,
    expected_output: float = DEFAULT_EXPECTED_OUTPUT,
    remote_size: tuple[int, int] = DEFAULT_REMOTE_SIZE,
    headers_only: bool = False,
    ocr_sample: int = DEFAULT_OCR_SAMPLE,
) -> EstimateReport:
    """Estimate ``spec``'s tokens, cost and time in one streaming pass over its manifest.

    ``detail_override`` replaces every row's detail, ``model_override`` the job's model;
    ``compare`` names the what-if models (default: three of :data:`.model.DEFAULT_COMPARE`),
    ``prices`` a user price file, ``expected_output`` the assumed share of ``max_tokens`` a reply uses,
    ``headers_only`` skips the run's structural check of local images (faster; truncated files pass).
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
    main = PricedModel.resolve(model_name, table, spec.endpoint.catalogue)
    targets = [main, *compare_targets(main, compare, table, spec.endpoint.catalogue)]
    manifest = Manifest(spec.input.manifest, spec.input.columns, spec.input.batch_rows)

    acc = Scan(spec, main, targets, detail_override, remote_size, verify=not headers_only, ocr_sample=ocr_sample)
    for item in manifest.items():
        acc.add(item)
    hint = acc.add_measured_hints()
    return replace(_report(acc, spec, main, table, expected_output), ocr_hint=hint)


# --- from the pass's sums to the report -------------------------------------------------------


def _report(acc: Scan, spec: JobSpec, main: PricedModel, table: PriceTable, expected: float) -> EstimateReport:
    """Costs and times from the pass's sums: the job's model, each what-if, the notes."""
    tpm, rpm = spec.pooled_limits  # a pool of deployments: their limits summed
    everything = Sums()
    for s in acc.by_detail.values():
        everything.add(s)

    def totals(price: Price, counts: Sums, image_tok: int, text_tok: int, max_completion: int) -> Totals:
        return _totals(price, counts, image_tok, text_tok, max_completion, expected, tpm, rpm)

    by_detail = {
        d: totals(main.price, s, s.image_tokens, s.text_tokens, s.max_completion)
        for d, s in sorted(acc.by_detail.items(), key=lambda kv: DETAILS.index(kv[0]))
    }
    what_if = tuple(
        Scenario(
            target.name,
            mode,
            target.price.name,
            totals(
                target.price,
                everything,
                acc.grid_images[i, mode],
                acc.text_by_tokenizer[target.info.tokenizer],
                everything.max_completion,
            ),
        )
        for i, target in enumerate(acc.targets)
        for mode in DETAIL_MODES
    )
    total = what_if[0].totals  # the job's model at the rows' own details
    enhancements = main.info.supports_enhancements
    addons = {name: a.cost(total.images) for name, a in sorted(table.addons.items())} if enhancements else {}
    sources = ImageSources(**acc.sources)
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
        remote_size=acc.remote_size,
        rows_read=acc.rows_read,
        total=total,
        by_detail=by_detail,
        images=sources,
        skipped=dict(sorted(acc.skipped.items())),
        skipped_examples=tuple(acc.examples),
        what_if=what_if,
        addons_if_enabled=addons,
        notes=tuple(_notes(spec, main, expected, sources, acc.remote_size, by_detail, tpm, bool(addons))),
        video=acc.video.totals(),
        batch_route=batch_shards(spec, total.requests, acc.request_bytes, total.admission_tokens),
    )


def _totals(
    price: Price,
    counts: Sums,
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
    by_requests = counts.requests / rpm if rpm else None
    minutes: float | None = None
    bound: Literal["tokens", "requests"] | None = None
    if by_tokens is not None and (by_requests is None or by_tokens >= by_requests):
        minutes, bound = by_tokens, "tokens"
    elif by_requests is not None:
        minutes, bound = by_requests, "requests"
    return Totals(
        counts.rows,
        counts.images,
        image_tok,
        text_tok,
        max_completion,
        expected_completion,
        costs,
        minutes,
        bound,
        counts.requests,
    )


def _notes(
    spec: JobSpec,
    main: PricedModel,
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
    elif len(spec.deployments) > 1:
        notes.append(
            f"time is at the pooled limits of {len(spec.deployments)} deployments (their TPM and RPM summed), "
            f"with every row's tokens as {main.info.name} counts them"
        )
    else:
        notes.append("time is at the job's limits; Azure charges prompt + max_tokens per request at admission")
    fmt = spec.output.format
    if fmt is not None and fmt.schema is not None:
        notes.append(
            f"the schema ({fmt.source}) is counted as prompt text, the tokens of its compact JSON, on every request: "
            "an assumption (the service's docs do not say how a schema is billed; the emulator bills it so)"
        )
    if addons:
        notes.append(
            "add-ons: OCR and grounding cost per image if the legacy enhancements were enabled (not by this job)"
        )
    notes.append(f"prices: {main.price.name} from {main.price.source}, {main.price.date} (override with --prices FILE)")
    return notes
