"""Deterministic answers that prove which image the emulator received.

A full answer starts with one fragment per image, in request order::

    image 1: 640x480 PNG sha256:0123456789abcdef detail=high.

then, on the legacy enhancement route, what OCR read on the image (``extra``: a heading and
the lines, each on its own line), then seeded filler words until it holds exactly
``answer_tokens`` tokens of the deployment's encoding (more only when the fragments alone are
longer). The filler is seeded from the config seed and the image digests (or the prompt text
when there is no image), so the same request always gets the same answer and a test can tell
row i's answer from row j's. An answer is kept as its token sequence, like a model's output: a
reply cut at ``max_tokens`` (in ``chat.py``) is the decoded prefix of that many tokens.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from .images import ImageInfo
from .tokens import Tokenizer

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
    """A full answer: its text and its token sequence under the deployment's encoding."""

    text: str
    token_ids: tuple[int, ...]
    tokenizer: Tokenizer

    @property
    def tokens(self) -> int:
        return len(self.token_ids)

    def cut(self, limit: int) -> str:
        """The reply a model stopped after ``limit`` tokens would give: those tokens, decoded."""
        if limit >= len(self.token_ids):
            return self.text
        return self.tokenizer.decode(list(self.token_ids[: max(limit, 0)]))


class AnswerBuilder:
    """Builds (and caches) full answers of ``answer_tokens`` tokens (or more, for many images)."""

    def __init__(self, *, seed: int, answer_tokens: int, cache_size: int = 4096) -> None:
        self._seed = seed
        self._answer_tokens = answer_tokens
        self._cache: OrderedDict[tuple[str, ...], Answer] = OrderedDict()
        self._cache_size = cache_size

    def build(
        self, images: Sequence[ReceivedImage], texts: Sequence[str], tokenizer: Tokenizer, *, extra: str = ""
    ) -> Answer:
        """The full (untruncated) answer for a request with these images and user texts;
        ``extra`` (text ending in a newline) goes between the image fragments and the filler."""
        if images:
            key = tuple(f"{im.info.sha256}/{im.info.width}x{im.info.height}/{im.detail}" for im in images)
        else:
            key = ("text", hashlib.sha256("\x1f".join(texts).encode()).hexdigest())
        cache_key = (tokenizer.name, *key, hashlib.sha256(extra.encode()).hexdigest() if extra else "")
        answer = self._cache.get(cache_key)
        if answer is None:
            text = self._compose(images, key, tokenizer, extra)
            answer = Answer(text, tuple(tokenizer.encode(text)), tokenizer)
            self._cache[cache_key] = answer
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return answer

    def _compose(
        self, images: Sequence[ReceivedImage], key: tuple[str, ...], tokenizer: Tokenizer, extra: str = ""
    ) -> str:
        head = " ".join(image_fragment(k, im) for k, im in enumerate(images, start=1)) + extra
        rng = random.Random(f"{self._seed}|{'|'.join(key)}")
        # Both encodings split text before merging: a space-led word and a final "." are tokens
        # of their own, so every " word" below adds exactly one token (a test checks the list).
        # End with a period when there is room, so the answer reads like a sentence.
        missing = self._answer_tokens - tokenizer.count(head)
        if missing <= 0:
            return head
        words = [rng.choice(_FILLER_WORDS) for _ in range(missing - 1 if missing > 1 else 1)]
        spaced = bool(head) and not head.endswith("\n")
        if not spaced:  # the first word has no space before it: pick one that is a token alone too
            words[0] = rng.choice([w for w in _FILLER_WORDS if tokenizer.count(w) == 1])
        filler = (" " if spaced else "") + " ".join(words)
        return head + filler + ("." if missing > 1 else "")
