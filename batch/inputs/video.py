"""Videos as rows: frames sampled at chosen times, decoded one at a time with PyAV (FFmpeg).

Current vision models take no video: a video row sends sampled frames as images (the retired
Azure Video Retrieval enhancement is refused by the planner). This module knows containers:

- :func:`claims_video` says a file is meant to be a video, from its name (mp4, mov, m4v, webm,
  mkv, avi) or its first bytes (ISO-BMFF ``ftyp`` of a video brand, Matroska/WebM EBML, AVI RIFF);
- :func:`probe_video` reads the container's metadata only (duration, size, frame rate): what
  the plan and ``batch estimate`` need, no frame decoded;
- :func:`sample_times` and :func:`frame_size` turn ``[video]`` settings into the frame times and
  the size each frame is sent at;
- :func:`decode_frames` decodes the frames at those times one after another, seeking ahead when
  the next time is far, so memory holds one frame whatever the video's length.

Errors are :class:`~batch.core.ImageError` with codes ``video_invalid`` (named like a video, is
not one), ``video_corrupt`` (damaged or truncated), ``video_no_stream`` (no video stream: audio
only), ``video_codec_unsupported`` (no decoder in the bundled FFmpeg), ``video_empty`` (no
duration, no frames) and ``video_bad_range`` (start/end outside the video).
"""

from __future__ import annotations

import io
import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error

from ..core import ImageError, VideoSpec
from .files import open_file

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoFrame",
    "VideoInfo",
    "claims_video",
    "decode_frames",
    "frame_label",
    "frame_size",
    "probe_video",
    "sample_times",
]

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})
# ISO-BMFF brands of video files (HEIF/AVIF images share the box format, not these brands).
_VIDEO_BRANDS = (b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"qt  ", b"dash")
_EBML = b"\x1a\x45\xdf\xa3"
# Decoding on to the next time beats a seek unless it is this far ahead (a seek restarts at the
# keyframe before it, typically 2-10 s back).
_SEEK_AHEAD_S = 5.0
_JPEG_QUALITY = 85


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """A video stream as its container describes it (nothing decoded)."""

    width: int
    height: int
    duration_s: float
    fps: float | None
    codec: str


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One sampled frame as JPEG bytes, at ``time_s`` seconds from the video's start."""

    time_s: float
    data: bytes = field(repr=False)
    width: int
    height: int


def claims_video(path: Path, head: bytes) -> bool:
    """The file is meant to be a video: by its suffix, or by its first bytes."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    return _video_magic(head)


def _video_magic(head: bytes) -> bool:
    if head[4:8] == b"ftyp":
        return head[8:12] in _VIDEO_BRANDS
    return head.startswith(_EBML) or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")


def frame_label(time_s: float) -> str:
    """The text part that goes before a frame: its time in the video."""
    return f"t={time_s:.1f}s"


def probe_video(path: Path) -> VideoInfo:
    """The video stream's size, duration, frame rate and codec from the container alone."""
    shown = str(path)
    with open_file(path) as f:
        head = f.read(16)
    if not _video_magic(head):
        raise ImageError(
            f"{shown} is named like a video but is not one (no video container header)", code="video_invalid"
        )
    try:
        with av.open(str(path), "r") as container:
            if not container.streams:
                raise ImageError(f"{shown} holds no streams (zero-length video)", code="video_empty")
            if not container.streams.video:
                raise ImageError(f"{shown} has no video stream", code="video_no_stream")
            stream = container.streams.video[0]
            codec = _decodable(stream, shown)
            duration = _duration(container, stream)
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            no_frames = stream.frames == 0 and _counts_frames(container)
    except av.error.EOFError:  # a header and nothing after it
        raise ImageError(f"{shown} ends before its first frame (zero-length video)", code="video_empty") from None
    except av.error.FFmpegError as exc:
        raise ImageError(f"{shown} is not a readable video: {_reason(exc)}", code="video_corrupt") from None
    if duration <= 0 or no_frames:
        raise ImageError(f"{shown} holds no frames (zero-length video)", code="video_empty")
    if width < 1 or height < 1:
        raise ImageError(f"{shown}: the video stream has no frame size", code="video_corrupt")
    return VideoInfo(width, height, duration, fps, codec)


def _counts_frames(container: av.container.InputContainer) -> bool:
    """MP4/MOV/AVI headers count the frames; Matroska/WebM leave the count at 0 (unknown)."""
    return container.format.name.split(",")[0] in ("mov", "avi")


def _decodable(stream: av.video.stream.VideoStream, shown: str) -> str:
    ctx = stream.codec_context
    name = ctx.name if ctx is not None else ""
    if not name or name == "none":
        raise ImageError(
            f"{shown}: the video's codec ({_tag(ctx)}) has no decoder in the bundled FFmpeg",
            code="video_codec_unsupported",
        )
    return str(name)


def _tag(ctx: av.codec.context.CodecContext | None) -> str:
    tag = ctx.codec_tag if ctx is not None else ""
    return str(tag).strip() or "unknown"


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _reason(exc: av.error.FFmpegError) -> str:
    return str(getattr(exc, "strerror", None) or exc).strip()


def sample_times(info: VideoInfo, spec: VideoSpec, shown: str) -> list[float]:
    """The times (seconds from the start) of the frames to send: ``spec.frames`` spread evenly
    (the middle of equal slices), else one every ``1 / fps`` seconds from ``start``."""
    start = spec.start_s
    end = info.duration_s if spec.end_s is None else min(spec.end_s, info.duration_s)
    if start >= end:
        raise ImageError(
            f"{shown}: start {start:g}s is not before end {end:g}s (the video lasts {info.duration_s:.3f}s)",
            code="video_bad_range",
        )
    span = end - start
    if spec.frames is not None:
        return [round(start + (k + 0.5) * span / spec.frames, 3) for k in range(spec.frames)]
    fps = spec.fps if spec.fps is not None else 1.0
    count = max(1, math.ceil(span * fps - 1e-9))
    return [round(start + k / fps, 3) for k in range(count)]


def frame_size(info: VideoInfo, long_side: int | None) -> tuple[int, int]:
    """The size frames are sent at: the video's, scaled down so its long side is ``long_side``."""
    w, h = info.width, info.height
    if long_side is None or max(w, h) <= long_side:
        return w, h
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def decode_frames(path: Path, times: list[float], size: tuple[int, int]) -> Generator[VideoFrame, None, None]:
    """The frame shown at each of ``times`` (ascending), as JPEG at ``size``, one at a time.

    A time past the last frame takes the last frame when it is within a second of it (metadata
    durations are rounded); further than that the file is truncated (``video_corrupt``)."""
    shown = str(path)
    try:
        with av.open(str(path), "r") as container:
            stream = container.streams.video[0]
            yield from _sampled(container, stream, times, size, shown)
    except av.error.FFmpegError as exc:
        raise ImageError(
            f"{shown}: decoding failed (damaged or truncated?): {_reason(exc)}", code="video_corrupt"
        ) from None


def _sampled(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    times: list[float],
    size: tuple[int, int],
    shown: str,
) -> Iterator[VideoFrame]:
    """The frame on screen at each time: the last whose timestamp is not after it (one frame is
    decoded ahead to know). Times ascend, so it never seeks back; it seeks forward only when the
    next time is more than ``_SEEK_AHEAD_S`` past the frame it has."""
    tb = stream.time_base or Fraction(1, 1000)
    base = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    frames: Iterator[av.VideoFrame] | None = None
    current: av.VideoFrame | None = None  # the last frame at or before the time asked
    ahead: av.VideoFrame | None = None  # the frame after it, already decoded
    for t in times:
        target = base + t + 1e-3  # timestamps are rounded to the time base
        at = _time(current)
        if frames is None or (at is not None and target - at > _SEEK_AHEAD_S):
            if _seek(container, stream, int((base + t) / tb)) or frames is None:
                frames, current, ahead = container.decode(stream), None, None
        while True:
            if ahead is None and (ahead := next(frames, None)) is None:
                break
            next_time = _time(ahead)
            if next_time is not None and next_time > target:
                break
            current, ahead = ahead, None
        shown_frame = current if current is not None else ahead  # a seek may land just after t
        end = _time(shown_frame)
        if shown_frame is None or end is None or (ahead is None and end < target - 1.0):
            last = f"{end - base:.1f}s" if end is not None else "0s"
            raise ImageError(f"{shown} ends at {last}, before the frame at {t:.1f}s: truncated?", code="video_corrupt")
        yield _encode(shown_frame, t, size)


def _time(frame: av.VideoFrame | None) -> float | None:
    return None if frame is None or frame.time is None else float(frame.time)


def _seek(container: av.container.InputContainer, stream: av.video.stream.VideoStream, pts: int) -> bool:
    """Seek to the keyframe at or before ``pts``; False when the file cannot seek (damaged index,
    a stream cut short): decoding on from where it is still finds the frames that exist."""
    try:
        container.seek(max(0, pts), stream=stream, backward=True)
    except av.error.FFmpegError:
        return False
    return True


def _encode(frame: av.VideoFrame, t: float, size: tuple[int, int]) -> VideoFrame:
    image = frame.to_image(width=size[0], height=size[1])  # type: ignore[no-untyped-call]
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=_JPEG_QUALITY)
    return VideoFrame(t, buf.getvalue(), image.width, image.height)
