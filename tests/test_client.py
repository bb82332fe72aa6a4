"""The client's pure parts: URLs per endpoint kind, reply parsing, secrets kept out of reprs."""

from __future__ import annotations

from typing import Any

import pytest

from batch.client import KeyCredential, Target, normalize_finish_reason, parse_completion


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"finish_reason": "stop"}, "stop"),
        ({"finish_reason": "length"}, "length"),
        ({"finish_reason": "content_filter"}, "content_filter"),
        ({"finish_reason": {"type": "stop", "stop": "<|fim_suffix|>"}}, "stop"),  # Azure enhanced example
        ({"finish_reason": None, "finish_details": {"type": "max_tokens"}}, "length"),  # gpt-4 vision-preview
        ({"finish_details": {"type": "stop", "stop": "<|fim_suffix|>"}}, "stop"),
        ({}, None),
    ],
)
def test_finish_reason_normalised(choice: dict[str, Any], expected: str | None) -> None:
    assert normalize_finish_reason(choice) == expected


def test_parse_completion_reads_answer_usage_and_request_id() -> None:
    body = {
        "id": "chatcmpl-1",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "A red square."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105},
    }
    c = parse_completion(body, {"x-request-id": "req-9"})
    assert (c.answer, c.finish_reason, c.request_id, c.model) == ("A red square.", "stop", "req-9", "gpt-4o-2024-08-06")
    assert c.usage is not None and (c.usage.prompt_tokens, c.usage.total_tokens) == (100, 105)
    filtered = parse_completion({"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]}, {})
    assert filtered.answer is None and filtered.usage is None and filtered.finish_reason == "content_filter"


@pytest.mark.parametrize(
    ("kind", "url", "expected", "model"),
    [
        (
            "azure",
            "https://r.openai.azure.com/",
            "https://r.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-10-21",
            None,
        ),
        ("azure-v1", "https://r.openai.azure.com", "https://r.openai.azure.com/openai/v1/chat/completions", "dep"),
        (
            "azure-v1",
            "https://r.openai.azure.com/openai/v1/",
            "https://r.openai.azure.com/openai/v1/chat/completions",
            "dep",
        ),
        ("openai", "https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions", "dep"),
    ],
)
def test_urls_per_kind(kind: str, url: str, expected: str, model: str | None) -> None:
    t = Target(kind, url.rstrip("/"), "dep", "2024-10-21")
    assert t.chat_url == expected
    assert t.model_in_body == model


async def test_key_credential_headers_and_repr() -> None:
    azure = KeyCredential("sk-abc123", bearer=False)
    assert await azure.headers() == {"api-key": "sk-abc123"}
    assert await KeyCredential("sk-abc123", bearer=True).headers() == {"Authorization": "Bearer sk-abc123"}
    assert "sk-abc123" not in repr(azure) and "redacted" in repr(azure)
