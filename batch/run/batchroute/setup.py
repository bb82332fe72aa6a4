"""What the batch route needs before it sends anything, checked up front (bad input: nothing sent).

* The model must take images in batch: on Azure only the GPT-4o family does (the docs list
  gpt-4o 2024-08-06 / 2024-05-13 and gpt-4o-mini 2024-07-18; GPT-4 Turbo batch is text-only).
* The enqueued-token quota: ``[run].enqueued_tokens``, else Azure Global Batch's documented
  default for the model; a model with no known default needs the key.
* Every line names the deployment in ``body.model`` (on classic Azure too, where the online
  route names it in the path): the RequestBuilder is made with it.
"""

from __future__ import annotations

import random

import aiohttp

from ...core import DEFAULT_ENQUEUED_TOKENS, JobSpec, ModelInfo, SpecError, default_enqueued_tokens, lookup_model
from ...inputs import Manifest, ManifestInfo
from ...ledger import ResultStore
from ...ocr import check_ocr_setup
from ...plan import OcrAccess, Planner, RequestBuilder
from ...send import RetryPolicy, Target
from ..rows import RowRequests

__all__ = ["RouteSetup", "enqueued_quota"]


def enqueued_quota(spec: JobSpec) -> int:
    if spec.run.enqueued_tokens is not None:
        return spec.run.enqueued_tokens
    quota = default_enqueued_tokens(spec.endpoint.model)
    if quota is not None:
        return quota
    known = ", ".join(p for p, _ in DEFAULT_ENQUEUED_TOKENS)
    raise SpecError(
        f"[run].enqueued_tokens: no default enqueued-token quota is known for model {spec.endpoint.model!r} "
        f"(defaults exist for {known}); set it to your deployment's quota"
    )


def _check_images_in_batch(spec: JobSpec, model: ModelInfo) -> None:
    if spec.endpoint.kind in ("azure", "azure-v1") and not model.name.lower().startswith("gpt-4o"):
        raise SpecError(
            f"[endpoint].model: {spec.endpoint.model!r} cannot take images in Azure batch jobs; only the GPT-4o "
            'family (gpt-4o, gpt-4o-mini) does. Use route = "online" or a GPT-4o Global-Batch deployment'
        )
    if spec.ocr.mode in ("azure-enhancements", "azure-read"):
        raise SpecError(f"[ocr].mode: {spec.ocr.mode!r} is not available on the batch route; use 'off' or 'local'")


class RouteSetup:
    """The job's model, target, manifest, result store and planner, as the route uses them."""

    def __init__(self, spec: JobSpec) -> None:
        if spec.run.route != "batch":
            raise SpecError('the batch route runs only jobs with [run].route = "batch"')
        self.spec = spec
        self.model = lookup_model(spec.endpoint.model)
        _check_images_in_batch(spec, self.model)
        self.quota = enqueued_quota(spec)
        self.shard_lines = spec.run.shard_lines
        self.target = Target.from_spec(spec.endpoint)
        self.manifest = Manifest(spec.input.manifest, spec.input.columns, spec.input.batch_rows)
        self.info: ManifestInfo = self.manifest.check()
        self.store = ResultStore.for_job(spec, self.info)
        check_ocr_setup(spec, supports_enhancements=False, key=None)
        self.builder = RequestBuilder(spec, self.model, spec.endpoint.deployment)
        access = OcrAccess(extensions_url=None, vision_key=False, read=False)
        self.planner = Planner(spec, self.model, access=access)

    def row_requests(self, session: aiohttp.ClientSession) -> RowRequests:
        return RowRequests.for_run(
            self.spec,
            self.model,
            self.planner,
            self.builder,
            session,
            extensions_url=None,
            vision_key=None,
            policy=RetryPolicy(),
            rng=random.Random(),
        )
