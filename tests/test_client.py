"""The client's pure parts: URLs per endpoint kind, reply parsing, request bodies, secrets kept out of reprs."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from batch.core.catalogue import lookup_model
from batch.core.records import WorkItem
from batch.core.spec import load_spec
from batch.plan import RequestBuilder
from batch.send.auth import KeyCredential
from batch.send.http import Target
from batch.send.replies import normalize_finish_reason, parse_completion


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


def _builder(tmp_path: Path) -> RequestBuilder:
    pq.write_table(pa.table({"id": ["a"], "image": ["a.png"]}), tmp_path / "m.parquet")
    job = tmp_path / "job.toml"
    job.write_text(
        '[input]\nmanifest = "m.parquet"\n[prompt]\nsystem = "You caption."\nuser = "Describe."\n'
        '[endpoint]\nkind = "azure-v1"\nurl = "http://127.0.0.1:9"\ndeployment = "gpt-4o"\n'
        '[output]\npath = "out.parquet"\n'
    )
    return RequestBuilder(load_spec(job), lookup_model("gpt-4o"), "gpt-4o")


@pytest.mark.parametrize(
    "prompt",
    [
        None,
        'quotes " and \\ backslashes, a newline\n, a tab\t, NUL \x00, ünïcødé, 画像 — emoji 🙂',
        '\x00image-0123456789abcdef\x00 "data:image/png;base64," looks like the placeholder',
    ],
)
def test_request_body_is_the_json_of_the_documented_shape(tmp_path: Path, prompt: str | None) -> None:
    """The inline image is spliced into the encoded body, not run through json.dumps: the bytes must
    be exactly what encoding the whole body would give, whatever the prompt holds."""
    Image.new("RGB", (9, 7), (1, 2, 3)).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    req = _builder(tmp_path).build(WorkItem(0, "a", "a.png", prompt=prompt, detail="low", max_tokens=7))
    expected = {
        "messages": [
            {"role": "system", "content": "You caption."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt or "Describe."},
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": "data:image/png;base64," + base64.b64encode(data).decode(),
                            "detail": "low",
                        },
                    },
                ],
            },
        ],
        "model": "gpt-4o",
        "max_tokens": 7,
    }
    assert req.body == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def test_remote_image_url_is_passed_through(tmp_path: Path) -> None:
    url = "https://example.com/a%20b.png?x=1&y=\u00e9"
    req = _builder(tmp_path).build(WorkItem(0, "a", url))
    assert json.loads(req.body)["messages"][1]["content"][1]["image_url"]["url"] == url
