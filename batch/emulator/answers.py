"""Deterministic answers that prove which image the emulator received.

A full answer starts with one fragment per image, in request order::

    image 1: 640x480 PNG sha256:0123456789abcdef detail=high.

then seeded filler words until it holds ``answer_tokens`` tokens (by the emulator's counter).
The filler is seeded from the config seed and the image digests (or the prompt text when
there is no image), so the same request always gets the same answer and a test can tell row
i's answer from row j's. Truncation to ``max_tokens`` happens afterwards, in ``app.py``.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from .images import ImageInfo
from .tokens import count_tokens

__all__ = ["Answer", "AnswerBuilder", "ReceivedImage", "image_fragment"]

_FILLER_WORDS: tuple[str, ...] = (
    "the", "scene", "shows", "a", "small", "table", "with", "several", "objects", "near",
    "window", "light", "falls", "across", "paper", "documents", "numbers", "printed", "in",
    "columns", "left", "right", "upper", "lower", "corner", "blue", "red", "green", "grey",
    "text", "label", "reads", "clearly", "faint", "background", "foreground", "person",
    "building", "street", "tree", "sky", "chart", "line", "rising", "falling", "total",
    "amount", "date", "signature", "stamp", "logo", "page", "border", "shadow", "bright",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ReceivedImage:
    """One image as received: its facts plus the detail the request asked for."""

    info: ImageInfo
    detail: str
    source: str  # "data" or "url"


def image_fragment(index: int, image: ReceivedImage) -> str:
    info = image.info
    return f"image {index}: {info.width}x{info.height} {info.format} sha256:{info.sha256[:16]} detail={image.detail}."


@dataclass(frozen=True, slots=True)
class Answer:
    """A full answer and its length in the emulator's tokens."""

    text: str
    tokens: int


class AnswerBuilder:
    """Builds (and caches) full answers of at least ``answer_tokens`` tokens."""

    def __init__(self, *, seed: int, answer_tokens: int, cache_size: int = 4096) -> None:
        self._seed = seed
        self._answer_tokens = answer_tokens
        self._cache: OrderedDict[tuple[str, ...], Answer] = OrderedDict()
        self._cache_size = cache_size

    def build(self, images: Sequence[ReceivedImage], texts: Sequence[str]) -> Answer:
        """The full (untruncated) answer for a request with these images and user texts."""
        if images:
            key = tuple(f"{im.info.sha256}/{im.info.width}x{im.info.height}/{im.detail}" for im in images)
        else:
            key = ("text", hashlib.sha256("\x1f".join(texts).encode()).hexdigest())
        answer = self._cache.get(key)
        if answer is None:
            text = self._compose(images, key)
            answer = Answer(text, count_tokens(text))
            self._cache[key] = answer
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return answer

    def _compose(self, images: Sequence[ReceivedImage], key: tuple[str, ...]) -> str:
        parts = [image_fragment(k, im) for k, im in enumerate(images, start=1)]
        used = sum(count_tokens(p) for p in parts)
        rng = random.Random(f"{self._seed}|{'|'.join(key)}")
        # Each filler word is exactly one token; end with a period when there is room so the
        # answer reads like a sentence.
        missing = self._answer_tokens - used
        if missing > 0:
            words = [rng.choice(_FILLER_WORDS) for _ in range(missing - 1 if missing > 1 else 1)]
            filler = " ".join(words)
            parts.append(filler + "." if missing > 1 else filler)
        return " ".join(parts)
