"""The emulator counts usage like the real service: OpenAI's BPE per model, OpenAI's chat framing.

The reference here is real tiktoken loaded by the client's own loader (``batch.tokens.text``):
the emulator has its own loader (it shares no code with the client), and these tests show the two
agree to the token, so an estimator that is exact can be seen to be exact against the emulator.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest
from emulator_helpers import Caller, azure_path, chat_body, data_url, image_part, make_image, zero_config

from batch.emulator import Deployment, EmbeddedEmulator
from batch.emulator import tokens as emulator_tokens
from batch.emulator.answers import _FILLER_WORDS
from batch.emulator.models import rules_for
from batch.emulator.tokens import ENCODINGS, REPLY_PRIMING, TOKENS_PER_MESSAGE, TokenizerUnavailable, tokenizer
from batch.tokens.text import get_encoding

# Text where a word/punctuation regex and BPE disagree: accents, digits, contractions, CJK, emoji.
TRICKY = (
    "Describe this photograph's composition précisément; list every amount like -9,824,995.53 "
    "and dates (2024-08-06), 東京の写真, naïve café — don't guess! 🙂 <|endoftext|>"
)


@pytest.mark.parametrize("name", ENCODINGS)
def test_counts_equal_real_tiktoken(name: str) -> None:
    ours, reference = tokenizer(name), get_encoding(name)
    spaces = "  indented\n\nnext line\r\n\ttabs   trailing   \n"
    for text in (TRICKY, spaces, "Hello, world!", "a" * 3000, " ".join(_FILLER_WORDS), ""):
        assert ours.count(text) == len(reference.encode_ordinary(text))
        assert ours.encode(text) == reference.encode_ordinary(text)


def test_model_encodings() -> None:
    for model in ("gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini", "gpt-4.1-mini", "o4-mini", "gpt-5", "o3"):
        assert rules_for(model).tokenizer == "o200k_base", model
    for model in ("gpt-4", "gpt-4-turbo-2024-04-09", "gpt-4-vision-preview"):
        assert rules_for(model).tokenizer == "cl100k_base", model


@pytest.mark.parametrize("name", ENCODINGS)
def test_filler_words_are_one_token_each(name: str) -> None:
    # The answer builder relies on it to make answers exactly answer_tokens long.
    tok = tokenizer(name)
    assert [w for w in _FILLER_WORDS if tok.count(" " + w) != 1] == []
    assert any(tok.count(w) == 1 for w in _FILLER_WORDS)  # a first word for text-only answers


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(TokenizerUnavailable, match="knows o200k_base, cl100k_base"):
        tokenizer("p50k_base")


def test_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every caller, on any thread, gets the one loaded tokenizer; the vocabulary is not read again.

    How long the load and the counts take is a benchmark (``bench/emulator_tokens.py``), not a test.
    """
    tok = tokenizer("o200k_base")

    def read_again(spec: object) -> dict[bytes, int]:
        raise AssertionError("the vocabulary was read a second time")

    monkeypatch.setattr(emulator_tokens, "_ranks", read_again)
    with ThreadPoolExecutor(max_workers=8) as pool:
        others = list(pool.map(lambda _: tokenizer("o200k_base"), range(16)))
    assert all(other is tok for other in others)
    assert tokenizer("o200k_base") is tok
    for i in range(2000):
        text = f"Describe image {i}."
        assert tok.count(text) == len(tok.encode(text))


@pytest.mark.parametrize(
    ("deployment", "model", "encoding"),
    [("gpt-4o", "gpt-4o", "o200k_base"), ("turbo", "gpt-4-turbo-2024-04-09", "cl100k_base")],
)
async def test_prompt_tokens_follow_the_chat_framing(
    session: aiohttp.ClientSession, deployment: str, model: str, encoding: str
) -> None:
    enc = get_encoding(encoding)
    img = make_image(1024, 1024)  # 765 image tokens at high detail on either model
    system = "You caption images for an archive. Be exact."
    body = {
        "messages": [
            {"role": "system", "content": system},
            {
                "role": "user",
                "name": "archivist",
                "content": [{"type": "text", "text": TRICKY}, image_part(data_url(img))],
            },
        ],
        "max_tokens": 10,
    }

    def n(text: str) -> int:
        return len(enc.encode_ordinary(text))

    expected = (
        (TOKENS_PER_MESSAGE + n("system") + n(system))
        + (TOKENS_PER_MESSAGE + n("user") + n("archivist") + 1 + n(TRICKY))
        + REPLY_PRIMING
        + 765
    )
    with EmbeddedEmulator(zero_config(Deployment(deployment, model))) as emu:
        status, _, reply = await Caller(session, emu.url).post(azure_path(deployment), body)
        logged = emu.requests()[-1]
    assert status == 200, reply
    assert reply["usage"]["prompt_tokens"] == expected == logged["prompt_tokens"]
    assert logged["image_tokens"] == 765  # the log tells image tokens apart (benchmarks compare them)


@pytest.mark.parametrize(
    ("deployment", "model", "encoding"), [("gpt-4o", "gpt-4o", "o200k_base"), ("turbo", "gpt-4-turbo", "cl100k_base")]
)
async def test_answers_and_cuts_are_exact_in_the_models_tokens(
    session: aiohttp.ClientSession, deployment: str, model: str, encoding: str
) -> None:
    enc = get_encoding(encoding)
    img = make_image(300, 200, seed=3)
    with EmbeddedEmulator(zero_config(Deployment(deployment, model), answer_tokens=60)) as emu:
        caller = Caller(session, emu.url)
        _, _, full = await caller.post(azure_path(deployment), chat_body(image_part(data_url(img)), max_tokens=500))
        text = full["choices"][0]["message"]["content"]
        assert full["usage"]["completion_tokens"] == 60 == len(enc.encode_ordinary(text))
        assert full["choices"][0]["finish_reason"] == "stop" and text.endswith(".")
        tokens = enc.encode_ordinary(text)
        for limit in (1, 5, 13, 59):
            _, _, cut = await caller.post(
                azure_path(deployment), chat_body(image_part(data_url(img)), max_tokens=limit)
            )
            assert cut["choices"][0]["finish_reason"] == "length"
            assert cut["usage"]["completion_tokens"] == limit
            assert cut["choices"][0]["message"]["content"] == enc.decode(tokens[:limit])
        _, _, plain = await caller.post(
            azure_path(deployment), {"messages": [{"role": "user", "content": "Hi?"}], "max_tokens": 500}
        )
        answer = plain["choices"][0]["message"]["content"]
        assert plain["usage"]["completion_tokens"] == 60 == len(enc.encode_ordinary(answer))
