"""A video row's part of the plan: which frames it sends, at what size, in how many requests.

Frame times come from ``[video]`` (:func:`batch.inputs.sample_times`), the size from the
container's metadata (:func:`batch.inputs.frame_size`): nothing is decoded, so the run and
``batch estimate`` plan the same frames. The planner (:mod:`.planner`) calls this and nothing else
decides a video row's requests.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ..core import ModelInfo, OcrMode, RowError, VideoSpec, WorkItem
from ..inputs import VIDEO_SUFFIXES, frame_label, frame_size, probe_video, sample_times
from ..tokens import count_text
from .request import PlannedImage

__all__ = [
    "RETIRED_ENHANCEMENT",
    "check_remote",
    "frames_per_request",
    "label_tokens",
    "row_sampling",
    "video_requests",
]

RETIRED_ENHANCEMENT = (
    "ocr 'azure-enhancements' cannot take a video: Azure's video enhancement (Azure AI Vision Video "
    "Retrieval with acv_document_id) was retired on 30 June 2025, and current models take no video "
    "input. Frame sampling is the way now: set the row's ocr to 'off' (or another mode) and its "
    "frames are sampled per [video] and sent as images"
)


def check_remote(url: str) -> None:
    """An http(s) video is refused: the service takes no video, and the run downloads nothing."""
    if PurePosixPath(urlsplit(url).path).suffix.lower() in VIDEO_SUFFIXES:
        raise RowError(
            f"{url} is a video URL: videos are sampled into frames from local files only "
            "(http(s) files are never downloaded); download it next to the manifest",
            code="video_remote",
        )


def frames_per_request(spec: VideoSpec, model: ModelInfo) -> int:
    """Frames one request carries: ``frames_per_request``, capped by the model's image limit."""
    wanted = spec.frames_per_request or model.max_images
    return max(1, min(wanted, model.max_images))


def row_sampling(spec: VideoSpec, item: WorkItem) -> VideoSpec:
    """``[video]`` with the row's own columns over it: a row's ``video_frames`` or ``video_fps``
    replaces the job's way of sampling (frames first), ``video_start``/``video_end`` its range."""
    v = spec
    if item.video_frames is not None:
        if item.video_frames < 1:
            raise RowError(f"video_frames {item.video_frames} must be at least 1", code="bad_video_sampling")
        v = replace(v, frames=item.video_frames, fps=None)
    elif item.video_fps is not None:
        if not item.video_fps > 0:
            raise RowError(f"video_fps {item.video_fps:g} must be above 0", code="bad_video_sampling")
        v = replace(v, fps=item.video_fps, frames=None)
    if item.video_start is not None:
        if not item.video_start >= 0:
            raise RowError(f"video_start {item.video_start:g} must be 0 or more seconds", code="bad_video_sampling")
        v = replace(v, start_s=item.video_start)
    if item.video_end is not None:
        v = replace(v, end_s=item.video_end)
    return v


def video_requests(path: Path, spec: VideoSpec, model: ModelInfo, mode: OcrMode) -> list[list[PlannedImage]]:
    """The frames of each request, in order, numbered from 1, with their times and sizes."""
    if mode == "azure-enhancements":
        raise RowError(RETIRED_ENHANCEMENT, code="video_enhancement_retired")
    info = probe_video(path)
    times = sample_times(info, spec, str(path))
    if len(times) > spec.max_frames:
        raise RowError(
            f"{len(times)} frames sampled from {path}, over [video].max_frames = {spec.max_frames}; "
            "lower [video].fps, set [video].frames or start/end, or raise the limit",
            code="video_too_long",
        )
    size = frame_size(info, spec.long_side)
    frames = [PlannedImage(n, size, t) for n, t in enumerate(times, start=1)]
    per = frames_per_request(spec, model)
    return [frames[i : i + per] for i in range(0, len(frames), per)]


def label_tokens(images: list[PlannedImage], tokenizer: str) -> int:
    """Text tokens of the time labels sent before the frames (one text part each)."""
    return sum(count_text(frame_label(im.time_s), tokenizer) for im in images if im.time_s is not None)
