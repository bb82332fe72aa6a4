"""The Batch API route end to end: real jobs, the real emulator over loopback, time compressed by
``batch_seconds`` and ``--poll-seconds``, never by mocking the client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, Fault, LatencyModel
from tests.support import API_KEY, Sample


def batch_emulator(**kwargs: Any) -> EmbeddedEmulator:
    kwargs.setdefault("batch_seconds", 0.6)
    quota = kwargs.pop("quota", None)
    config = EmulatorConfig(
        deployments=[
            Deployment("online", "gpt-4o", tpm=10_000_000),
            Deployment("bulk", "gpt-4o", tpm=10**9, global_batch=True, enqueued_tokens=quota),
        ],
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel.zero(),
        seed=1,
        **kwargs,
    )
    return EmbeddedEmulator(config)


@pytest.fixture
def emu() -> Iterator[EmbeddedEmulator]:
    with batch_emulator() as server:
        yield server


def rows(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def run(job: Path, *extra: str) -> int:
    return main(["run", str(job), "--no-progress", "--route", "batch", "--poll-seconds", "0", *extra])


def batch_state(emu: EmbeddedEmulator) -> Any:
    from batch.emulator.batches import BATCHES_KEY

    assert emu._runner is not None
    return emu._runner.app[BATCHES_KEY]


@pytest.mark.parametrize(("kind", "suffix"), [("azure", ""), ("azure-v1", ""), ("openai", "/v1")])
def test_three_url_styles_give_the_online_result_rows(
    tmp_path: Path, emu: EmbeddedEmulator, env: dict[str, str], kind: str, suffix: str
) -> None:
    s = Sample(tmp_path, 9)
    job = s.job(emu.url + suffix, kind=kind, deployment="bulk", extra="[run]\nshard_lines = 4\n")
    assert run(job) == 0
    out = rows(tmp_path / "out/results.parquet")
    assert [r["id"] for r in out] == [f"row-{i}" for i in range(9)]
    book = batch_state(emu)
    assert len(book.jobs) == 3  # 9 rows in shards of at most 4 lines
    for i, r in enumerate(out):
        assert r["status"] == "ok", r
        assert f"sha256:{s.digests[i][:16]}" in r["answer"]  # row i got image i's answer
        assert r["finish_reason"] == "length" and r["total_tokens"] == r["prompt_tokens"] + r["completion_tokens"]
        assert r["route"] == "batch" and r["batch_id"] in book.jobs and r["request_id"]
        assert r["completion_tokens"] == 50  # max_tokens = 50 cut the emulator's 60-token answer
    assert all(j.status == "completed" for j in book.jobs.values())
    input_ids = {j.input_file_id for j in book.jobs.values()}
    assert not input_ids & set(book.files.files)  # input files deleted after completion
    assert main(["run", str(job), "--no-progress", "--route", "batch"]) == 0  # a rerun sends nothing
    assert len(book.jobs) == 3


def test_filtered_and_failing_lines(tmp_path: Path, env: dict[str, str]) -> None:
    s = Sample(tmp_path, 6)
    faults = (
        Fault("content-filter-prompt", match=s.digests[1][:16]),
        Fault("500", match=s.digests[2][:16], count=1),  # fails once, then succeeds on resubmission
        Fault("500", match=s.digests[3][:16]),  # fails every time
    )
    with batch_emulator(faults=faults) as emu:
        job = s.job(emu.url, deployment="bulk", extra="[run]\nmax_resubmits = 2\n")
        assert run(job) == 0
        out = rows(tmp_path / "out/results.parquet")
        book = batch_state(emu)
    assert [r["status"] for r in out] == ["ok", "filtered", "ok", "error", "ok", "ok"]
    assert out[1]["error_code"] == "content_filter"
    assert out[3]["error_code"] == "InternalServerError"  # the online route's code for the same 500
    assert "gave up after 3 batch submissions" in out[3]["error_message"]
    assert out[2]["attempts"] == 2 and out[3]["attempts"] == 3
    assert len(book.jobs) == 3  # the first shard, then a resubmission shard per round


def test_expired_batch_resubmits_what_it_left_undone(tmp_path: Path, env: dict[str, str]) -> None:
    s = Sample(tmp_path, 12)
    with batch_emulator(batch_seconds=2.0, batch_expire_seconds=0.9) as emu:
        job = s.job(emu.url, deployment="bulk", extra="[run]\nmax_resubmits = 5\n")
        assert run(job) == 0
        out = rows(tmp_path / "out/results.parquet")
        statuses = [j.status for j in batch_state(emu).jobs.values()]
    assert [r["status"] for r in out] == ["ok"] * 12
    assert statuses[0] == "expired" and len(statuses) >= 2


def test_detach_then_collect(tmp_path: Path, emu: EmbeddedEmulator, env: dict[str, str]) -> None:
    s = Sample(tmp_path, 5)
    job = s.job(emu.url, deployment="bulk")
    assert run(job, "--detach") == 0
    assert not (tmp_path / "out/results.parquet").exists()
    assert len(batch_state(emu).jobs) == 1
    assert run(job) == 0
    assert [r["status"] for r in rows(tmp_path / "out/results.parquet")] == ["ok"] * 5
    assert len(batch_state(emu).jobs) == 1  # collected, not submitted again


def test_a_batch_created_but_not_recorded_is_found_by_its_metadata(
    tmp_path: Path, emu: EmbeddedEmulator, env: dict[str, str]
) -> None:
    s = Sample(tmp_path, 4)
    job = s.job(emu.url, deployment="bulk")
    assert run(job, "--detach") == 0
    log = tmp_path / "out/results.parquet.parts/batch/shards.jsonl"
    lines = log.read_text().splitlines()
    assert '"batch_id"' in lines[-1]
    log.write_text("\n".join(lines[:-1]) + "\n")  # as if killed right after create
    assert run(job) == 0
    assert len(batch_state(emu).jobs) == 1
    assert [r["status"] for r in rows(tmp_path / "out/results.parquet")] == ["ok"] * 4


def test_cancel_then_collect(tmp_path: Path, env: dict[str, str]) -> None:
    s = Sample(tmp_path, 10)
    with batch_emulator(batch_seconds=4.0) as emu:
        job = s.job(emu.url, deployment="bulk")
        assert run(job, "--detach") == 0
        assert main(["cancel", str(job)]) == 0
        assert run(job) == 0
        jobs = list(batch_state(emu).jobs.values())
    assert jobs[0].status == "cancelled"
    assert [r["status"] for r in rows(tmp_path / "out/results.parquet")] == ["ok"] * 10


def test_quota_keeps_shards_waiting(tmp_path: Path, env: dict[str, str]) -> None:
    s = Sample(tmp_path, 6)
    with batch_emulator(quota=1500) as emu:
        job = s.job(emu.url, deployment="bulk", extra="[run]\nshard_lines = 2\nenqueued_tokens = 1500\n")
        assert run(job) == 0
        assert len(batch_state(emu).jobs) == 3
    assert [r["status"] for r in rows(tmp_path / "out/results.parquet")] == ["ok"] * 6


@pytest.mark.parametrize(
    ("kind", "model", "message"),
    [
        ("azure", "gpt-4-turbo", "cannot take images in Azure batch"),
        ("openai", "gpt-4.1", "no default enqueued-token quota"),
    ],
)
def test_bad_batch_jobs_exit_2_and_send_nothing(
    tmp_path: Path, emu: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str], kind: str,
    model: str, message: str,
) -> None:  # fmt: skip
    s = Sample(tmp_path, 2)
    job = s.job(emu.url + ("/v1" if kind == "openai" else ""), kind=kind, deployment="bulk", model=model)
    assert run(job) == 2
    assert message in capsys.readouterr().err
    assert not batch_state(emu).jobs


def test_a_standard_deployment_fails_the_batch_with_its_code(
    tmp_path: Path, emu: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 2)
    assert run(s.job(emu.url, deployment="online")) == 0
    out = rows(tmp_path / "out/results.parquet")
    assert {r["error_code"] for r in out} == {"model_not_found"}
    assert "model_not_found" in capsys.readouterr().err


def test_estimate_predicts_the_shards_the_run_writes(
    tmp_path: Path, emu: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    s = Sample(tmp_path, 9)
    job = s.job(emu.url, deployment="bulk", extra='[run]\nroute = "batch"\nshard_lines = 4\n')
    assert main(["estimate", str(job), "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)["batch_route"]
    assert run(job) == 0
    log = (tmp_path / "out/results.parquet.parts/batch/shards.jsonl").read_text().splitlines()
    written = [json.loads(line) for line in log if '"lines"' in line]
    assert predicted["shards"] == len(written) == 3 and predicted["requests"] == 9
    assert predicted["quota"] == 200_000_000 and predicted["waves"] == 1
    actual_bytes = sum(w["bytes"] for w in written)
    assert abs(predicted["request_bytes"] - actual_bytes) / actual_bytes < 0.15
    assert predicted["enqueued_tokens"] == sum(w["tokens"] for w in written)  # the same plan, the same tokens


def test_finish_online_sends_what_an_expired_batch_left_undone(tmp_path: Path, env: dict[str, str]) -> None:
    s = Sample(tmp_path, 12)
    with batch_emulator(batch_seconds=2.0, batch_expire_seconds=0.9) as emu:
        job = s.job(emu.url, deployment="bulk")
        assert run(job, "--finish-online") == 0
        online = [r for r in emu.requests() if r.get("route") == "azure"]  # the job's classic online route
        jobs = list(batch_state(emu).jobs.values())
    out = rows(tmp_path / "out/results.parquet")
    assert [r["status"] for r in out] == ["ok"] * 12
    assert len(jobs) == 1 and jobs[0].status == "expired"  # nothing resubmitted as a batch
    by_route = [r["route"] for r in out]
    assert 0 < by_route.count("online") == len(online) < 12
    assert all(f"sha256:{s.digests[i][:16]}" in r["answer"] for i, r in enumerate(out))


def test_an_unknown_status_stops_the_run_naming_it_and_keeps_the_state(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 3)
    with batch_emulator(batch_seconds=3.0) as emu:
        job = s.job(emu.url, deployment="bulk")
        assert run(job, "--detach") == 0
        (only,) = batch_state(emu).jobs.values()
        while only.status != "in_progress":  # it stays so for ~2 s before the emulator marks it again
            time.sleep(0.01)
        only.status = "paused"  # a status the docs do not list (the service's own state, set by hand)
        assert run(job) == 1
        assert "unknown status 'Paused'" in capsys.readouterr().err
        while only.status == "paused":
            time.sleep(0.01)
        assert run(job) == 0  # the service moved on: the same batch is collected
        assert len(batch_state(emu).jobs) == 1
    assert [r["status"] for r in rows(tmp_path / "out/results.parquet")] == ["ok"] * 3


def test_structured_answers_are_judged_and_typed_on_the_batch_route_too(
    tmp_path: Path, emu: EmbeddedEmulator, env: dict[str, str]
) -> None:
    """A schema job on the batch route: the same response_format lines, the same typed ``data``
    column and the same judgement of each answer as online (here a schema-drift answer)."""
    import json

    from tests.test_structured import SCHEMA

    s = Sample(tmp_path, 4)
    (s.root / "schema.json").write_text(json.dumps(SCHEMA))
    job = s.job(emu.url, deployment="bulk", max_tokens=1500, extra='schema = "schema.json"\n[run]\nshard_lines = 2\n')
    emu.set_faults([Fault("schema-drift", match=s.digests[2][:12])])
    assert run(job) == 0
    out = rows(tmp_path / "out/results.parquet")
    assert pq.read_schema(tmp_path / "out/results.parquet").field("data").type.field("total").type == "double"
    assert [(r["status"], r["error_code"], r["route"]) for r in out] == [
        ("ok", None, "batch"),
        ("ok", None, "batch"),
        ("error", "schema_mismatch", "batch"),
        ("ok", None, "batch"),
    ]
    assert all(json.loads(r["answer"]) == r["data"] for i, r in enumerate(out) if i != 2)
    assert out[2]["data"] is None and "account_number" in out[2]["error_message"]
