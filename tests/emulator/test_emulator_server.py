"""EmbeddedEmulator lifecycles, the command line, config files, latency, and the import rule."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from emulator_helpers import Caller, azure_path, zero_config

from batch.emulator import (
    Deployment,
    EmbeddedEmulator,
    EmulatorConfig,
    LatencyModel,
    create_app,
)
from batch.emulator.command import build_parser, config_from_args

ROOT = Path(__file__).resolve().parents[2]
EMULATOR_DIR = ROOT / "batch" / "emulator"
HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


def test_emulator_imports_nothing_else_from_batch() -> None:
    """It stands in for a foreign service: no shared code with the client side."""
    offenders = []
    for path in sorted(EMULATOR_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 1:  # "from .. import x" climbs out of batch/emulator
                    names = ["." * node.level + (node.module or "")]
                elif node.level == 0 and node.module:
                    names = [node.module]
            else:
                continue
            for name in names:
                if name.startswith(".") or (
                    name.split(".")[0] == "batch"
                    and not (name == "batch.emulator" or name.startswith("batch.emulator."))
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert offenders == []


def test_sync_with(tmp_path: Path) -> None:
    with EmbeddedEmulator(zero_config()) as emu:
        assert emu.url.startswith("http://127.0.0.1:")

        async def call() -> int:
            async with aiohttp.ClientSession() as session:
                return (await Caller(session, emu.url).post(azure_path(), HI))[0]

        assert asyncio.run(call()) == 200
        assert emu.stats()["deployments"]["gpt-4o"]["admitted"] == 1
        assert len(emu.requests()) == 1
        url = emu.url
    with pytest.raises(RuntimeError):
        emu.stats()
    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(_get(url + "/healthz"))


async def _get(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status


async def test_async_with() -> None:
    async with EmbeddedEmulator(zero_config(), port=0) as emu:
        assert await _get(emu.url + "/healthz") == 200
        async with aiohttp.ClientSession() as session:
            assert (await Caller(session, emu.url).post(azure_path(), HI))[0] == 200
        assert emu.stats()["deployments"]["gpt-4o"]["admitted"] == 1
    with pytest.raises(aiohttp.ClientConnectionError):
        await _get(emu.url + "/healthz")


def test_start_failure_is_reported() -> None:
    with EmbeddedEmulator(zero_config()) as first:
        with pytest.raises(RuntimeError, match="failed to start"):
            EmbeddedEmulator(zero_config(), port=first.port).start()


async def test_create_app_in_the_callers_loop() -> None:
    server = TestServer(create_app(zero_config()), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            status, _, body = await Caller(session, str(server.make_url(""))).post(azure_path(), HI)
        assert status == 200 and body["usage"]["completion_tokens"] == 20
    finally:
        await server.close()


async def test_latency_holds_the_response(session: aiohttp.ClientSession) -> None:
    latency = LatencyModel(base_s=0.2, per_token_s=0.01, jitter=0.0)  # 0.2 + 20 * 0.01 = 0.4 s
    with EmbeddedEmulator(zero_config(latency=latency)) as emu:
        caller = Caller(session, emu.url)
        start = time.monotonic()
        results = await asyncio.gather(*(caller.post(azure_path(), HI) for _ in range(5)))
        elapsed = time.monotonic() - start
        assert [r[0] for r in results] == [200] * 5
        assert 0.39 <= elapsed < 1.2  # held concurrently, not one after another
        # Charged at admission, before the hold.
        assert emu.stats()["deployments"]["gpt-4o"]["admitted"] == 5


def test_latency_model_parsing_and_jitter() -> None:
    import random

    from batch.emulator.latency import parse_latency

    assert parse_latency("zero") == LatencyModel.zero()
    assert parse_latency("realistic") == LatencyModel.realistic()
    assert parse_latency("0.5,0.01,0.2") == LatencyModel(0.5, 0.01, 0.2)
    with pytest.raises(ValueError):
        parse_latency("fast")
    realistic = LatencyModel.realistic()
    assert 1.0 <= realistic.base_s <= 1.5 and 0.015 <= realistic.per_token_s <= 0.02
    rng = random.Random(1)
    holds = [realistic.hold_seconds(100, rng) for _ in range(2000)]
    nominal = realistic.base_s + 100 * realistic.per_token_s
    assert abs(sum(holds) / len(holds) - nominal) < 0.05 * nominal
    assert min(holds) < nominal < max(holds)


def test_config_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "emu.toml"
    path.write_text(
        'charge_rule = "chars+max"\nseed = 7\nlatency = "zero"\nwindow_mode = "fixed"\n'
        '[[deployments]]\nname = "cap"\nmodel = "gpt-4o-mini"\ntpm = 2000\n'
        '[[deployments]]\nname = "big"\nmodel = "gpt-4.1"\ntpm = 450000\nrpm = 100\n'
    )
    config = EmulatorConfig.from_toml(path)
    assert [d.name for d in config.deployments] == ["cap", "big"]
    assert config.deployments[0].requests_per_minute == 12
    assert config.deployments[1].request_capacity == 16
    assert (config.charge_rule, config.seed, config.window_mode) == ("chars+max", 7, "fixed")
    assert config.latency == LatencyModel.zero()
    path.write_text('colour = "blue"\n[[deployments]]\nname = "x"\nmodel = "gpt-4o"\n')
    with pytest.raises(ValueError, match="colour"):
        EmulatorConfig.from_toml(path)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="charge_rule"):
        EmulatorConfig([Deployment("a", "gpt-4o")], charge_rule="everything")
    with pytest.raises(ValueError, match="duplicate"):
        EmulatorConfig([Deployment("a", "gpt-4o"), Deployment("a", "gpt-4o-mini")])
    with pytest.raises(ValueError):
        Deployment("a", "gpt-4o", tpm=0)


def test_cli_arguments_and_env_keys(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["--deployment", "vision=gpt-4o-2024-08-06:450000", "--deployment", "small=gpt-4o-mini",
         "--latency", "zero", "--charge-rule", "max-only", "--api-key", "k1", "--seed", "3"]
    )  # fmt: skip
    config = config_from_args(args, environ={"EMULATOR_API_KEYS": "k2, k3"})
    assert [(d.name, d.model, d.tpm) for d in config.deployments] == [
        ("vision", "gpt-4o-2024-08-06", 450000),
        ("small", "gpt-4o-mini", 60000),
    ]
    assert config.api_keys == frozenset({"k1", "k2", "k3"})
    assert (config.charge_rule, config.seed, config.latency) == ("max-only", 3, LatencyModel.zero())
    default = config_from_args(build_parser().parse_args([]), environ={})
    assert [(d.name, d.model, d.tpm) for d in default.deployments] == [("gpt-4o", "gpt-4o", 60000)]
    assert default.api_keys is None
    assert default.latency == LatencyModel.realistic()


def test_main_serves_until_sigterm() -> None:
    env = {**os.environ, "EMULATOR_API_KEYS": "secret-env-key"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch.emulator", "--port", "0", "--latency", "zero",
         "--deployment", "vision=gpt-4o:1000", "--api-key", "secret-cli-key"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline()]
        assert banner[0].startswith("emulator listening on http://127.0.0.1:"), banner
        url = banner[0].split()[-1]
        while not banner[-1].lstrip().startswith("e.g. POST"):
            banner.append(proc.stdout.readline())

        async def call() -> tuple[int, int]:
            async with aiohttp.ClientSession() as session:
                caller = Caller(session, url)
                ok = (await caller.post(azure_path("vision"), HI, key="secret-env-key"))[0]
                bad = (await caller.post(azure_path("vision"), HI, key="other"))[0]
                return ok, bad

        assert asyncio.run(call()) == (200, 401)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    printed = "".join(banner) + out + err
    assert "deployment vision: model gpt-4o" in printed
    assert "secret" not in printed


def test_main_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    from batch.emulator import main

    assert main(["--deployment", "no-equals-sign"]) == 2
    assert "NAME=MODEL" in capsys.readouterr().err
