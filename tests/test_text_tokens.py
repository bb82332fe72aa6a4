"""Text tokens: real tiktoken ids from the shipped vocabularies, loaded with no network at all."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiktoken_ext import openai_public

from batch.tokens import text as text_tokens
from batch.tokens.text import (
    REPLY_PRIMING,
    TOKENS_PER_MESSAGE,
    TokenizerError,
    chat_prompt_tokens,
    count_text,
    get_encoding,
)

ROOT = Path(__file__).resolve().parents[1]


# Ids from OpenAI's cookbook "How to count tokens with tiktoken" and tiktoken's README.
@pytest.mark.parametrize(
    ("encoding", "text", "ids"),
    [
        ("o200k_base", "hello world", [24912, 2375]),
        ("cl100k_base", "hello world", [15339, 1917]),
        ("o200k_base", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0]),
        ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ],
)
def test_real_token_ids(encoding: str, text: str, ids: list[int]) -> None:
    assert get_encoding(encoding).encode(text) == ids
    assert count_text(text, encoding) == len(ids)


def test_empty_text_is_zero_tokens() -> None:
    assert count_text("", "o200k_base") == 0


def test_special_token_markers_in_text_count_as_plain_text() -> None:
    # tiktoken's encode() would raise on "<|endoftext|>"; a prompt may contain it literally.
    assert count_text("<|endoftext|>", "o200k_base") == 7
    assert count_text("<|endoftext|>", "cl100k_base") == 7


def test_chat_framing_follows_the_cookbook() -> None:
    # "You caption images." and "Describe the image." are 4 tokens each; roles are 1 token each.
    assert TOKENS_PER_MESSAGE == 3 and REPLY_PRIMING == 3
    assert chat_prompt_tokens("You caption images.", "Describe the image.", "o200k_base") == (3 + 1 + 4) * 2 + 3
    assert chat_prompt_tokens("", "Describe the image.", "o200k_base") == 3 + 1 + 4 + 3
    assert chat_prompt_tokens("", "", "cl100k_base") == 3 + 1 + 3


def test_unknown_tokenizer_is_a_clear_error() -> None:
    with pytest.raises(TokenizerError, match="unknown tokenizer 'p50k_base'.*o200k_base, cl100k_base"):
        count_text("x", "p50k_base")


def test_pinned_urls_and_hashes_are_tiktokens_own() -> None:
    # If tiktoken ever moves a file or changes its hash, the cache names here must follow.
    for name, vocab in text_tokens._VOCABS.items():
        source = inspect.getsource(getattr(openai_public, name))
        assert vocab.url in source and vocab.sha256 in source
    o200k = text_tokens._VOCABS["o200k_base"]
    assert hashlib.sha1(o200k.url.encode()).hexdigest() == "fb374d419588a4632f3f557e76b4b70aebbca790"


def test_a_damaged_cache_file_is_replaced(tmp_path: Path) -> None:
    vocab = text_tokens._VOCABS["cl100k_base"]
    target = tmp_path / hashlib.sha1(vocab.url.encode()).hexdigest()
    target.write_bytes(b"not a vocabulary")
    assert text_tokens._materialize(vocab, tmp_path) == target
    assert hashlib.sha256(target.read_bytes()).hexdigest() == vocab.sha256
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left


_OFFLINE_SCRIPT = """
import json, os, tiktoken
result = {}
# The harness itself: plain tiktoken with an empty cache must fail to download here.
os.environ["TIKTOKEN_CACHE_DIR"] = os.environ["EMPTY_DIR"]
try:
    tiktoken.get_encoding("o200k_base")
    result["plain_tiktoken"] = "loaded"
except Exception as exc:
    result["plain_tiktoken"] = type(exc).__name__
os.environ["TIKTOKEN_CACHE_DIR"] = os.environ["USER_DIR"]  # a user's own setting, to be kept
from batch.tokens.text import cache_dir, count_text
result["o200k"] = count_text("hello world", "o200k_base")
result["cl100k"] = count_text("tiktoken is great!", "cl100k_base")
result["cache_dir"] = str(cache_dir())
result["env_after"] = os.environ.get("TIKTOKEN_CACHE_DIR")
print(json.dumps(result))
"""


def test_counting_works_with_no_network_and_a_fresh_cache(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")}
    env.update(
        HTTPS_PROXY="http://127.0.0.1:9",  # any download attempt fails at once
        HTTP_PROXY="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        NO_PROXY="",
        no_proxy="",
        XDG_CACHE_HOME=str(tmp_path / "xdg"),  # nothing cached yet: the vocabularies come from the wheel
        EMPTY_DIR=str(tmp_path / "empty"),
        USER_DIR=str(tmp_path / "user"),
        PYTHONPATH=str(ROOT),
    )
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["plain_tiktoken"] in ("ProxyError", "ConnectionError")  # the network really is unreachable
    assert result["o200k"] == 2
    assert result["cl100k"] == 6
    assert result["cache_dir"] == str(tmp_path / "xdg" / "vision-batch" / "tiktoken")
    assert result["env_after"] == str(tmp_path / "user")  # the user's setting is restored
    assert not (tmp_path / "user").exists()  # and their cache is never written to
    cached = sorted(p.name for p in (tmp_path / "xdg" / "vision-batch" / "tiktoken").iterdir())
    expected = sorted(hashlib.sha1(v.url.encode()).hexdigest() for v in text_tokens._VOCABS.values())
    assert cached == expected
