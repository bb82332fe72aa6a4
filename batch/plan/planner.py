"""The one place that decides what a manifest row sends: :class:`Planner` turns a row into a
:class:`~batch.plan.request.RequestPlan` (or a :class:`~batch.plan.request.Refusal`).

The rules written here and nowhere else:

- **Documents**: a local PDF, or a TIFF of more than one page (:func:`batch.inputs.probe_file`,
  one look at the file); a one-page TIFF is an image.
- **Pages per request** (:func:`pages_per_request`): one with ``requests = "per-page"`` or the
  legacy azure-enhancements (a single image per request), else ``pages_per_request`` capped by
  the model's image limit.
- **Remote images** are not downloaded: estimated as :data:`REMOTE_IMAGE_SIZE`.
- **Videos** (:mod:`.video`): frames sampled per ``[video]``, their sizes from the container's
  metadata, ``frames_per_request`` (capped by the model's image limit) to a request, each frame
  after a time label; the legacy azure-enhancements is refused (the video enhancement is retired).
- Image sizes come from headers (no pixel decoded); text tokens from the model's tokenizer.
- **Structured answers** (``[output].schema`` / ``json``): the job is checked once, up front
  (:func:`~.schema_check.check_format`); a document goes in one request (one answer to parse);
  the schema's tokens count as prompt text; a row's own prompt must say "JSON" in JSON mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

from ..core import DETAILS, OCR_MODES, Estimate, ImageError, JobSpec, ModelInfo, OcrMode, RowError, WorkItem
from ..inputs import data_url_size, document_pages, probe_file
from ..tokens import chat_prompt_tokens, get_encoding, image_tokens
from .request import PlannedImage, PlannedRequest, Refusal, RequestPlan, SourceKind, TokenField
from .schema_check import check_format, format_tokens, has_json_word
from .video import check_remote, label_tokens, row_sampling, video_requests

__all__ = ["REMOTE_IMAGE_SIZE", "OcrAccess", "Planner", "image_token_counter", "pages_per_request", "row_ocr_mode"]

# An http(s) image is never fetched: its tokens are estimated as for a picture of this size.
REMOTE_IMAGE_SIZE = (1024, 1024)


@dataclass(frozen=True, slots=True)
class OcrAccess:
    """What the run has for the OCR modes that need Azure: a classic deployment's extensions URL
    (azure-enhancements), a Vision key, a Read client. The estimate plans without it (unchecked)."""

    extensions_url: str | None
    vision_key: bool
    read: bool


def row_ocr_mode(item: WorkItem, spec: JobSpec) -> OcrMode:
    """The row's OCR mode: its ``ocr`` column when set, else the job's."""
    raw = (item.ocr or "").strip().lower()
    if not raw:
        return spec.ocr.mode
    for mode in OCR_MODES:
        if raw == mode:
            return mode
    raise RowError(f"ocr {item.ocr!r} is not one of {', '.join(OCR_MODES)}", code="bad_ocr")


def pages_per_request(spec: JobSpec, model: ModelInfo, mode: OcrMode) -> int:
    """How many document pages one request carries."""
    if mode == "azure-enhancements":
        return 1
    if spec.output.format is not None:  # one answer to parse: the whole document in one request
        return model.max_images
    if spec.documents.requests == "per-page":
        return 1
    wanted = spec.documents.pages_per_request or model.max_images
    return max(1, min(wanted, model.max_images))


class Planner:
    """Plans rows for one job. Stateless per row; safe to call from worker threads."""

    def __init__(
        self,
        spec: JobSpec,
        model: ModelInfo,
        *,
        access: OcrAccess | None = None,
        detail_override: str | None = None,
        remote_size: tuple[int, int] = REMOTE_IMAGE_SIZE,
    ) -> None:
        self.spec = spec
        self.model = model
        self._access = access
        self._detail_override = detail_override
        self._remote_size = remote_size
        self._token_field: TokenField = "max_completion_tokens" if model.uses_max_completion_tokens else "max_tokens"
        self._base = spec.input.base_dir.resolve()
        # Rows share a few folders: each folder's real path is looked up once per run, not once a row.
        self._real_dir = lru_cache(maxsize=4096)(os.path.realpath)
        # Load the tokenizer now, before worker threads plan rows: the first load sets up its
        # offline cache, and a bad install should fail the job here, not every row.
        get_encoding(model.tokenizer)
        check_format(spec, model)
        self._format_tokens = format_tokens(spec.output.format, model.tokenizer)
        self._image_tokens = image_token_counter(model)

    def plan(self, item: WorkItem) -> RequestPlan | Refusal:
        """The row's plan, or why it cannot be sent."""
        return self.plan_and_read(item, keep=False)[0]

    def plan_and_read(self, item: WorkItem, *, keep: bool = True) -> tuple[RequestPlan | Refusal, bytes | None]:
        """The row's plan (or refusal) and, for a local image file with ``keep``, the file's bytes,
        read in the same open as the plan's look at its header: a caller that loads the image next
        (:func:`~batch.plan.load.load_requests` with ``data``) opens and checks the file once, not twice."""
        try:
            return self._plan(item, keep)
        except RowError as exc:
            return Refusal.of(item.index, exc), None

    def _plan(self, item: WorkItem, keep: bool) -> tuple[RequestPlan, bytes | None]:
        spec = self.spec
        mode = row_ocr_mode(item, spec)
        ref = (item.image or "").strip()
        source, path, file_bytes, groups, data = self._images(ref, item, mode, keep)
        default_detail = spec.video.detail if source == "video" else spec.prompt.detail
        detail = self._detail_override or (item.detail if item.detail is not None else default_detail)
        if detail not in DETAILS:
            raise RowError(f"detail {detail!r} is not one of {', '.join(DETAILS)}", code="bad_detail")
        max_out = item.max_tokens if item.max_tokens is not None else spec.prompt.max_tokens
        if max_out < 1:
            raise RowError(f"max_tokens {max_out} must be at least 1", code="bad_max_tokens")
        self._check_access(mode)
        user_text = item.prompt if item.prompt else spec.prompt.user
        self._check_json_word(user_text)
        text = chat_prompt_tokens(spec.prompt.system, user_text, self.model.tokenizer) + self._format_tokens

        def request(images: list[PlannedImage]) -> PlannedRequest:
            pictures = sum(self._image_tokens(im.size[0], im.size[1], detail) for im in images)
            labels = label_tokens(images, self.model.tokenizer)
            return PlannedRequest(tuple(images), Estimate(text + labels, pictures, max_out))

        if len(groups) > 1 and spec.output.format is not None:
            raise RowError(
                f"{sum(len(g) for g in groups)} pages do not fit one request ({self.model.max_images} images "
                "at most) and a structured answer needs the document in one; select pages with the row's pages column",
                code="document_too_long",
            )
        plan = RequestPlan(
            index=item.index,
            source=source,
            ref=ref if path is None else str(path),
            path=path,
            detail=detail,
            token_field=self._token_field,
            max_tokens=max_out,
            user_text=user_text,
            ocr=mode,
            hint=mode in ("local", "azure-read") and spec.ocr.hint,
            requests=tuple(request(g) for g in groups),
            file_bytes=file_bytes,
        )
        return plan, data

    def _images(
        self, ref: str, item: WorkItem, mode: OcrMode, keep: bool
    ) -> tuple[SourceKind, Path | None, int | None, list[list[PlannedImage]], bytes | None]:
        """Where the row's images come from, the images of each request, and (``keep``) a local
        image file's bytes."""
        if not ref:
            raise ImageError("the row has no image", code="image_missing")
        if ref.startswith(("http://", "https://")):
            check_remote(ref)
            if mode == "local":
                raise RowError(
                    "local OCR needs the image's pixels; http(s) images are not downloaded", code="ocr_unavailable"
                )
            return "remote", None, None, [[PlannedImage(None, self._remote_size)]], None
        if ref.startswith("data:"):
            return "inline", None, None, [[PlannedImage(None, data_url_size(ref))]], None
        path = self.resolve_path(ref)
        probe = probe_file(path, keep=keep)
        if probe.kind == "video":
            sampling = row_sampling(self.spec.video, item)
            return "video", path, probe.file_bytes, video_requests(path, sampling, self.model, mode), None
        if probe.kind == "image":
            assert probe.size is not None
            return "image", path, probe.file_bytes, [[PlannedImage(None, probe.size)]], probe.data
        pages = document_pages(path, item.pages, self.spec.documents.dpi, check=self._check_length)
        per = pages_per_request(self.spec, self.model, mode)
        images = [PlannedImage(n, size) for n, size in pages]
        return probe.kind, path, probe.file_bytes, [images[i : i + per] for i in range(0, len(images), per)], None

    def _check_json_word(self, user_text: str) -> None:
        fmt = self.spec.output.format
        if fmt is not None and fmt.kind == "json_object" and not has_json_word(self.spec.prompt.system, user_text):
            raise RowError(
                'JSON mode needs the word "JSON" in the messages; this row\'s prompt and the system prompt lack it',
                code="json_word_missing",
            )

    def _check_length(self, numbers: list[int]) -> None:
        limit = self.spec.documents.max_pages
        if len(numbers) > limit:
            raise RowError(
                f"{len(numbers)} pages selected, over [documents].max_pages = {limit}; "
                "select pages with the row's pages column or raise the limit",
                code="document_too_long",
            )

    def _check_access(self, mode: OcrMode) -> None:
        access = self._access
        if access is None or mode in ("off", "local"):
            return
        if mode == "azure-enhancements":
            if access.extensions_url is None or not self.model.supports_enhancements:
                raise RowError(
                    f"ocr 'azure-enhancements' needs a classic Azure deployment of gpt-4 vision-preview; "
                    f"this job's model is {self.model.name!r} at a {self.spec.endpoint.kind!r} endpoint",
                    code="ocr_unsupported",
                )
            if not access.vision_key:
                raise RowError(self._unconfigured(mode), code="ocr_unconfigured")
        elif not access.read:
            raise RowError(self._unconfigured(mode), code="ocr_unconfigured")

    def _unconfigured(self, mode: str) -> str:
        return (
            f"ocr {mode!r} needs an Azure AI Vision resource: set [ocr].vision_endpoint (or AZURE_VISION_ENDPOINT) "
            f"and its key in ${self.spec.ocr.vision_key_env}"
        )

    def resolve_path(self, ref: str) -> Path:
        """The row's file as an absolute path; ``path_outside_base`` unless the job allows it."""
        p = Path(ref).expanduser()
        full = self._resolve(p if p.is_absolute() else self._base / p)
        if not self.spec.input.allow_outside_paths and not full.is_relative_to(self._base):
            raise ImageError(
                f"image path {ref!r} is outside the manifest folder {self._base}; "
                "set [input].allow_outside_paths = true to allow it",
                code="path_outside_base",
            )
        return full

    def _resolve(self, path: Path) -> Path:
        """``path.resolve()``, with the folder's real path cached: only the file itself is looked at."""
        name = path.name
        if name in ("", ".", ".."):
            return path.resolve()
        candidate = os.path.join(self._real_dir(os.fspath(path.parent)), name)
        if os.path.islink(candidate):
            return Path(os.path.realpath(candidate))
        return Path(candidate)


def image_token_counter(model: ModelInfo) -> Callable[[int, int, str], int]:
    """:func:`batch.tokens.image_tokens` for one job's model, cached by (width, height, detail):
    archives hold many images of the same few sizes, and the plan and the body (:mod:`.body`) both
    count each row's images. Bound to the model once per job, so a call hashes three scalars, not
    the whole :class:`~batch.core.ModelInfo`."""
    return lru_cache(maxsize=65536)(partial(image_tokens, model))
