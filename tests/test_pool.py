"""Several deployments in one run, against the real emulator serving them all over loopback:
rows spread by free budget, a deployment that fails hard leaves the pool with its rows sent
elsewhere (0 lost), routing by what each model can take, the answered_by column, bad pools."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from batch.cli import main
from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, Fault, LatencyModel
from tests.support import API_KEY, Sample


def rows(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def chat_log(emu: EmbeddedEmulator) -> list[dict[str, Any]]:
    return [r for r in emu.requests() if r.get("route") in ("azure", "azure-v1", "openai")]


def emulator_of(
    *faults: Fault, latency: LatencyModel | None = None, tpm: tuple[int, int, int] = (10_000_000,) * 3
) -> EmbeddedEmulator:
    config = EmulatorConfig(
        deployments=[
            Deployment("a", "gpt-4o", tpm=tpm[0]),
            Deployment("b", "gpt-4o", tpm=tpm[1]),
            Deployment("c", "gpt-4o-mini", tpm=tpm[2], rpm=2700),
            Deployment("v", "gpt-4", tpm=10_000_000),  # gpt-4 vision-preview: the legacy enhancements
        ],
        api_keys=frozenset({API_KEY}),
        latency=latency or LatencyModel.zero(),
        faults=faults,
        seed=5,
    )
    return EmbeddedEmulator(config)


@pytest.fixture
def pool_emulator() -> Iterator[EmbeddedEmulator]:
    with emulator_of() as emu:
        yield emu


def pool_job(s: Sample, url: str, entries: list[str], extra: str = "") -> Path:
    """A job whose [endpoint] is replaced by the given [[endpoints]] entries."""
    job = s.job(url, extra=extra)
    text = job.read_text()
    head, rest = text.split("[endpoint]\n", 1)
    tail = rest[rest.index("[output]") :]
    job.write_text(head + "".join(f"[[endpoints]]\n{e}\n" for e in entries) + tail)
    return job


def entry(name: str, url: str, model: str = "gpt-4o", more: str = "") -> str:
    return f'url = "{url}"\ndeployment = "{name}"\nmodel = "{model}"\napi_key_env = "TEST_API_KEY"\n{more}'


def test_repeated_deployment_flag_spreads_rows_over_the_pool(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 60)
    with emulator_of(tpm=(60_000, 150_000, 450_000)) as emu:
        job = s.job(emu.url)
        flags = ["--deployment", "a:60000", "--deployment", "b:150000", "--deployment", "c:450000:2700"]
        assert main(["run", str(job), *flags]) == 0
        log = chat_log(emu)
    out = rows(tmp_path / "out/results.parquet")
    assert [r["status"] for r in out] == ["ok"] * 60
    assert len(log) == 60  # each row sent once
    used = Counter(r["deployment"] for r in log)
    assert used["a"] < used["b"] < used["c"], used  # in proportion to the limits (1 : 2.5 : 7.5)
    # answered_by names the deployment the emulator logged for that row's image.
    by_digest = {r["images"][0]["sha256"]: r["deployment"] for r in log}
    for i, r in enumerate(out):
        name, _, url = r["answered_by"].partition(" @ ")
        assert name == by_digest[s.digests[i]] and url == emu.url
    # The bar shows each deployment's tokens/min against its own limit.
    err = capsys.readouterr().err
    assert "a " in err and "/60k" in err and "/150k" in err and "/450k" in err


def test_a_deployment_answering_401_halfway_leaves_the_pool_and_no_row_is_lost(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # b refuses the key for the second half of the rows (rows are fed in order): halfway, whatever
    # the machine's speed.
    prompts = ["Describe the image."] * 45 + ["Describe the image (second half)."] * 45
    s = Sample(tmp_path, 90, extra={"prompt": prompts})
    latency = LatencyModel(0.02, 0.0, 0.0)
    with emulator_of(Fault("401", deployment="b", match="second half"), latency=latency) as emu:
        entries = [entry(n, emu.url) for n in ("a", "b")]
        job = pool_job(s, emu.url, entries, extra="[limits]\nconcurrency = 4\n")
        assert main(["run", str(job), "--no-progress"]) == 0
        log = chat_log(emu)
    out = rows(tmp_path / "out/results.parquet")
    assert [r["status"] for r in out] == ["ok"] * 90
    b = [r["status"] for r in log if r["deployment"] == "b"]
    assert 200 in b and 401 in b  # b answered, then refused the key
    assert Counter(r["answered_by"].split(" @ ")[0] for r in out)["a"] > 45
    err = capsys.readouterr().err
    assert "deployment b @" in err and "left the pool (1 left)" in err and "401" in err
    assert API_KEY not in err


def test_a_deployment_going_down_leaves_the_pool_and_the_rest_absorb_its_rows(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 40)
    with emulator_of(Fault("reset", deployment="a", start_s=0.5), latency=LatencyModel(0.05, 0.0, 0.0)) as emu:
        entries = [entry(n, emu.url) for n in ("a", "b")]
        job = pool_job(s, emu.url, entries, extra="[limits]\nconcurrency = 4\n")
        assert main(["run", str(job), "--no-progress"]) == 0
    out = rows(tmp_path / "out/results.parquet")
    assert [r["status"] for r in out] == ["ok"] * 40
    err = capsys.readouterr().err
    assert "deployment a @" in err and "left the pool" in err and "in a row failed" in err


def test_every_deployment_failing_stops_the_run_resumable(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 10)
    with emulator_of(Fault("404", deployment="a"), Fault("401", deployment="b")) as emu:
        job = pool_job(s, emu.url, [entry(n, emu.url) for n in ("a", "b")])
        assert main(["run", str(job), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "every deployment left the pool" in err and "run the same command again to resume" in err


def test_rows_go_only_to_a_deployment_whose_model_can_take_them(
    tmp_path: Path, pool_emulator: EmbeddedEmulator, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_VISION_KEY", API_KEY)  # the emulator's Vision routes take the chat key
    modes = ["azure-enhancements" if i % 3 == 0 else None for i in range(12)]
    s = Sample(tmp_path, 12, extra={"ocr": modes})
    url = pool_emulator.url
    job = pool_job(
        s, url, [entry("a", url), entry("v", url, model="gpt-4")], extra=f'[ocr]\nvision_endpoint = "{url}"\n'
    )
    assert main(["run", str(job), "--no-progress"]) == 0
    out = rows(tmp_path / "out/results.parquet")
    assert all(r["status"] == "ok" for r in out), [r["error_message"] for r in out]
    for r, mode in zip(out, modes, strict=True):
        if mode is not None:
            assert r["answered_by"] == f"v @ {url}"
    assert any(r["answered_by"] == f"a @ {url}" for r in out)
    enhanced = [
        r for r in pool_emulator.requests() if r.get("route") == "azure" and "/extensions/" in r.get("path", "")
    ]
    assert all(r["deployment"] == "v" for r in enhanced)


def test_a_row_no_deployment_can_take_is_an_error_row(
    tmp_path: Path, pool_emulator: EmbeddedEmulator, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_VISION_KEY", API_KEY)
    s = Sample(tmp_path, 3, extra={"ocr": ["azure-enhancements", None, None]})
    url = pool_emulator.url
    job = pool_job(s, url, [entry("a", url), entry("c", url, model="gpt-4o-mini")])
    assert main(["run", str(job), "--no-progress"]) == 0
    first, *others = rows(tmp_path / "out/results.parquet")
    assert first["error_code"] == "no_capable_deployment" and first["answered_by"] is None
    assert "a @" in first["error_message"] and "c @" in first["error_message"]
    assert [r["status"] for r in others] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("entries", "flags", "message"),
    [
        ([], ["--deployment", "a", "--deployment", "b:1000", "--deployment", "a:5000"], "'a' appears twice"),
        ([], ["--deployment", "a:0", "--deployment", "b"], "TPM must be at least 1"),
        ([], ["--deployment", "a:1000:-5", "--deployment", "b"], "RPM must be at least 1"),
        ([], ["--deployment", "a:lots"], "is not a whole number"),
        (["a", "a"], [], "'a' appears twice"),
        (["a", "b|no-key"], [], "api_key_env"),
        (["a", "b|tpm = 0"], [], "tpm"),
        (["a", "b|rpm = -1"], [], "rpm"),
        (["a", "b|model=gpt-17"], [], "unknown model 'gpt-17'"),
        (["a", "b|env=NOT_SET_ANYWHERE"], [], "NOT_SET_ANYWHERE"),
    ],
)
def test_a_bad_pool_exits_2_and_sends_nothing(
    tmp_path: Path,
    pool_emulator: EmbeddedEmulator,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    entries: list[str],
    flags: list[str],
    message: str,
) -> None:
    s = Sample(tmp_path, 3)
    url = pool_emulator.url
    if entries:
        tables = []
        for e in entries:
            name, _, change = e.partition("|")
            text = entry(name, url)
            if change == "no-key":
                text = text.replace('api_key_env = "TEST_API_KEY"\n', "")
            elif change.startswith("model="):
                text = text.replace('model = "gpt-4o"', f'model = "{change[6:]}"')
            elif change.startswith("env="):
                text = text.replace("TEST_API_KEY", change[4:])
            elif change:
                text += change + "\n"
            tables.append(text)
        job = pool_job(s, url, tables)
    else:
        job = s.job(url)
    assert main(["run", str(job), "--no-progress", *flags]) == 2
    assert message in capsys.readouterr().err
    assert chat_log(pool_emulator) == []


def test_endpoint_and_endpoints_together_are_refused(
    tmp_path: Path, pool_emulator: EmbeddedEmulator, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    s = Sample(tmp_path, 2)
    job = s.job(pool_emulator.url)
    job.write_text(job.read_text() + "[[endpoints]]\n" + entry("a", pool_emulator.url))
    assert main(["run", str(job), "--no-progress"]) == 2
    assert "either [endpoint]" in capsys.readouterr().err


def test_estimate_gives_the_run_time_at_the_pooled_limits(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    s = Sample(tmp_path, 30)
    url = "http://127.0.0.1:9"  # nothing is sent
    tables = [entry("a", url, more="tpm = 60000\n"), entry("b", url, more="tpm = 150000\n")]
    tables.append(entry("c", url, more="tpm = 450000\nrpm = 2700\n"))
    assert main(["estimate", str(pool_job(s, url, tables)), "--json"]) == 0
    pooled = json.loads(capsys.readouterr().out)
    assert pooled["limits"] == {"tpm": 660_000, "rpm": 360 + 900 + 2700}
    assert any("pooled limits of 3 deployments" in n for n in pooled["notes"])
    single = s.job(url, extra="[limits]\ntpm = 660000\nrpm = 3960\n")
    assert main(["estimate", str(single), "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert pooled["total"]["minutes"] == pytest.approx(alone["total"]["minutes"]) and alone["total"]["minutes"] > 0
