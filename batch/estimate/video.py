"""Video rows apart in ``batch estimate``: their frames, requests and tokens.

Counted from the same plan the run sends (:class:`batch.plan.Planner`): frame times and sizes
from the container's metadata, nothing decoded. The image tokens here are what the service
bills for the frames, exactly (a test compares them with the emulator's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..plan import RequestPlan

__all__ = ["VideoSums", "VideoTotals", "video_lines"]


@dataclass(frozen=True, slots=True)
class VideoTotals:
    """The video rows' share of the totals (already counted in them)."""

    rows: int
    requests: int
    frames: int
    image_tokens: int
    text_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return self.image_tokens + self.text_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "requests": self.requests,
            "frames": self.frames,
            "image_tokens": self.image_tokens,
            "text_tokens": self.text_tokens,
            "prompt_tokens": self.prompt_tokens,
        }


@dataclass(slots=True)
class VideoSums:
    """Running sums over the video rows of one pass."""

    rows: int = 0
    requests: int = 0
    frames: int = 0
    image_tokens: int = 0
    text_tokens: int = 0

    def add(self, plan: RequestPlan) -> None:
        self.rows += 1
        self.requests += len(plan.requests)
        self.frames += plan.images
        self.image_tokens += plan.image_tokens
        self.text_tokens += plan.text_tokens

    def totals(self) -> VideoTotals | None:
        if not self.rows:
            return None
        return VideoTotals(self.rows, self.requests, self.frames, self.image_tokens, self.text_tokens)


def video_lines(video: VideoTotals | None) -> list[str]:
    """The estimate's video paragraph (nothing when the manifest has no video row)."""
    if video is None:
        return []
    return [
        "",
        f"Video rows (included above): {video.rows:,} videos, {video.frames:,} frames sampled "
        f"(container metadata, nothing decoded) in {video.requests:,} requests; "
        f"{video.image_tokens:,} image tokens, {video.text_tokens:,} text tokens (prompt and time labels)",
    ]
