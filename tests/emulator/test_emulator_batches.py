"""The Files and Batch API routes: the openai SDK accepts them, every line runs through the chat
engine, job-level errors, the enqueued-token quota, expiry and cancel."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from emulator_helpers import KEY, chat_body, data_url, image_part, make_image, sha16, zero_config

from batch.emulator import Deployment, EmbeddedEmulator, Fault

V = "api-version=2024-10-21"


def batch_config(**kwargs: Any) -> Any:
    kwargs.setdefault("batch_seconds", 0.6)
    quota = kwargs.pop("quota", None)
    return zero_config(
        Deployment("online", "gpt-4o-2024-08-06", tpm=10_000_000),
        Deployment("bulk", "gpt-4o-2024-08-06", tpm=10**9, global_batch=True, enqueued_tokens=quota),
        api_keys=frozenset({KEY}),
        **kwargs,
    )


@pytest.fixture
def emu() -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator(batch_config()) as server:
        yield server


def lines(n: int, *, model: str = "bulk", url: str = "/chat/completions", text: str = "Describe this image.") -> bytes:
    out = []
    for i in range(n):
        body = chat_body(image_part(data_url(make_image(40 + i, 30, seed=i))), text=text, model=model, max_tokens=50)
        out.append(json.dumps({"custom_id": f"row-{i}", "method": "POST", "url": url, "body": body}))
    return ("\n".join(out) + "\n").encode()


def call(emu: EmbeddedEmulator, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data, headers = None, {"api-key": KEY}
    if isinstance(body, bytes):  # a multipart upload
        boundary = uuid.uuid4().hex
        data = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n'
                "Content-Type: application/jsonl\r\n\r\n"
            ).encode()
            + body
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(emu.url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, raw if "content" in path else json.loads(raw)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def submit(emu: EmbeddedEmulator, content: bytes, prefix: str = "/openai", query: str = "?" + V) -> dict[str, Any]:
    status, uploaded = call(emu, "POST", f"{prefix}/files{query}", content)
    assert status == 200, uploaded
    body = {"input_file_id": uploaded["id"], "endpoint": "/chat/completions", "completion_window": "24h"}
    status, created = call(emu, "POST", f"{prefix}/batches{query}", body)
    assert status == 200, created
    return created  # type: ignore[no-any-return]


def wait(emu: EmbeddedEmulator, batch_id: str, prefix: str = "/openai", query: str = "?" + V) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, batch = call(emu, "GET", f"{prefix}/batches/{batch_id}{query}")
        assert status == 200
        if batch["status"].lower() in ("completed", "failed", "expired", "cancelled"):
            return batch  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError("batch never finished")


def jsonl(emu: EmbeddedEmulator, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    status, raw = call(emu, "GET", f"/openai/files/{file_id}/content?{V}")
    assert status == 200
    return [json.loads(line) for line in raw.splitlines()]


def test_openai_sdk_uploads_creates_and_reads_a_batch(emu: EmbeddedEmulator) -> None:
    client = openai.OpenAI(base_url=emu.url + "/v1", api_key=KEY)
    uploaded = client.files.create(file=("in.jsonl", lines(3, url="/v1/chat/completions")), purpose="batch")
    created = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"job": "j1"}
    )
    assert created.status == "validating" and created.metadata == {"job": "j1"}
    while (batch := client.batches.retrieve(created.id)).status not in ("completed", "failed"):
        time.sleep(0.05)
    assert batch.status == "completed" and batch.request_counts is not None
    assert batch.request_counts.completed == 3 and batch.error_file_id is None  # OpenAI: no errors, no file
    assert batch.output_file_id is not None
    out = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    by_id = {line["custom_id"]: line for line in out}
    for i in range(3):
        answer = by_id[f"row-{i}"]["response"]["body"]["choices"][0]["message"]["content"]
        assert f"{40 + i}x30 PNG sha256:{sha16(make_image(40 + i, 30, seed=i))}" in answer
        assert by_id[f"row-{i}"]["response"]["status_code"] == 200
    assert [b.id for b in client.batches.list(limit=5).data] == [created.id]
    client.files.delete(uploaded.id)
    assert emu.requests()[-1]["route"] == "azure-v1"  # the lines went through the online chat engine


def test_azure_classic_capitalises_statuses_and_keeps_an_empty_error_file(emu: EmbeddedEmulator) -> None:
    created = submit(emu, lines(2))
    assert created["status"] == "Validating" and isinstance(created["created_at"], str)
    batch = wait(emu, created["id"])
    assert batch["status"] == "Completed"
    assert len(jsonl(emu, batch["output_file_id"])) == 2
    assert jsonl(emu, batch["error_file_id"]) == []  # a successful Azure job still has an empty error file


def test_old_or_missing_api_version_is_refused(emu: EmbeddedEmulator) -> None:
    assert call(emu, "GET", "/openai/batches")[0] == 404
    status, body = call(emu, "GET", "/openai/batches?api-version=2024-06-01")
    assert status == 400 and "2024-10-21" in body["error"]["message"]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "empty_file"),
        (b"\xef\xbb\xbf" + lines(1), "model_not_found"),
        (b"{not json\n", "invalid_json_line"),
        (lines(1, url="/v1/chat/completions"), "url_mismatch"),
        (lines(1, model="nope"), "model_not_found"),
        (lines(1, model="online"), "model_not_found"),  # a standard deployment is not a Global-Batch one
        (lines(1) + lines(1), "duplicate_custom_id"),
        (lines(1) + lines(2, model="other").replace(b"row-0", b"x-0").replace(b"row-1", b"x-1"), "model_not_found"),
    ],
)
def test_job_level_errors_fail_the_batch(emu: EmbeddedEmulator, content: bytes, code: str) -> None:
    batch = wait(emu, submit(emu, content)["id"])
    assert batch["status"] == "Failed"
    assert batch["errors"]["data"][0]["code"] == code


def test_model_mismatch_and_too_many_tasks() -> None:
    config = batch_config()
    config = type(config)(
        [*config.deployments, Deployment("bulk2", "gpt-4o-mini", tpm=10**9, global_batch=True)],
        api_keys=config.api_keys,
        latency=config.latency,
        batch_seconds=0.3,
    )
    with EmbeddedEmulator(config) as emu:
        mixed = lines(1) + lines(1, model="bulk2").replace(b"row-0", b"other-0")
        assert wait(emu, submit(emu, mixed)["id"])["errors"]["data"][0]["code"] == "model_mismatch"
        many = b"".join(lines(1).replace(b"row-0", f"r{i}".encode()) for i in range(50_001))
        status, up = call(emu, "POST", "/openai/v1/files", many)
        assert status == 200
        body = {"input_file_id": up["id"], "endpoint": "/chat/completions", "completion_window": "24h"}
        status, created = call(emu, "POST", "/openai/v1/batches", body)
        assert wait(emu, created["id"], "/openai/v1", "")["errors"]["data"][0]["code"] == "too_many_tasks"


def test_enqueued_token_quota_refuses_create_until_earlier_batches_finish() -> None:
    with EmbeddedEmulator(batch_config(quota=1000, batch_seconds=0.5)) as emu:
        first = submit(emu, lines(2))
        status, uploaded = call(emu, "POST", f"/openai/files?{V}", lines(2))
        body = {"input_file_id": uploaded["id"], "endpoint": "/chat/completions", "completion_window": "24h"}
        status, refused = call(emu, "POST", f"/openai/batches?{V}", body)
        assert status == 400 and refused["error"]["code"] == "token_limit_exceeded"
        wait(emu, first["id"])
        status, created = call(emu, "POST", f"/openai/batches?{V}", body)
        assert status == 200, created


def test_expiry_keeps_partial_results() -> None:
    with EmbeddedEmulator(batch_config(batch_seconds=2.0, batch_expire_seconds=0.9)) as emu:
        batch = wait(emu, submit(emu, lines(20))["id"])
        assert batch["status"] == "Expired"
        done, failed = jsonl(emu, batch["output_file_id"]), jsonl(emu, batch["error_file_id"])
        assert done and failed and len(done) + len(failed) == 20
        assert {line["error"]["code"] for line in failed} == {"batch_expired"}


def test_cancel_ends_cancelled_with_partial_results(emu: EmbeddedEmulator) -> None:
    with EmbeddedEmulator(batch_config(batch_seconds=3.0)) as slow:
        created = submit(slow, lines(20))
        time.sleep(1.2)
        status, cancelling = call(slow, "POST", f"/openai/batches/{created['id']}/cancel?{V}")
        assert status == 200 and cancelling["status"] == "Cancelling"
        batch = wait(slow, created["id"])
        assert batch["status"] == "Cancelled"
        failed = jsonl(slow, batch["error_file_id"])
        assert {line["error"]["code"] for line in failed} == {"batch_cancelled"}
        assert 0 < len(failed) < 20


def test_content_filter_and_5xx_lines_land_in_the_error_file() -> None:
    faults = (Fault("content-filter-prompt", match="FILTER ME"), Fault("500", match="BREAK ME"))
    with EmbeddedEmulator(batch_config(faults=faults)) as emu:
        content = (
            lines(2)
            + lines(1, text="FILTER ME").replace(b"row-0", b"f-0")
            + lines(1, text="BREAK ME").replace(b"row-0", b"b-0")
        )
        batch = wait(emu, submit(emu, content)["id"])
        assert batch["status"] == "Completed" and batch["request_counts"]["failed"] == 2
        errors = {line["custom_id"]: line["response"] for line in jsonl(emu, batch["error_file_id"])}
        assert errors["f-0"]["status_code"] == 400 and errors["f-0"]["body"]["error"]["code"] == "content_filter"
        assert errors["b-0"]["status_code"] == 500
        assert {line["custom_id"] for line in jsonl(emu, batch["output_file_id"])} == {"row-0", "row-1"}


def test_files_beyond_the_cap_are_refused_until_some_are_deleted() -> None:
    with EmbeddedEmulator(batch_config(max_files=2)) as emu:
        first = call(emu, "POST", f"/openai/files?{V}", lines(1))[1]
        assert call(emu, "POST", f"/openai/files?{V}", lines(1))[0] == 200
        status, refused = call(emu, "POST", f"/openai/files?{V}", lines(1))
        assert status == 400 and refused["error"]["code"] == "quota_exceeded"
        assert call(emu, "DELETE", f"/openai/files/{first['id']}?{V}")[1]["deleted"] is True
        assert call(emu, "POST", f"/openai/files?{V}", lines(1))[0] == 200
