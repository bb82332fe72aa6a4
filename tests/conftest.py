"""Shared fixtures: the real emulator over loopback, and an environment holding only the test key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel
from tests.support import API_KEY


@pytest.fixture
def emulator() -> Iterator[EmbeddedEmulator]:
    config = EmulatorConfig(
        deployments=[
            Deployment("gpt-4o", "gpt-4o", tpm=10_000_000),
            Deployment("mini", "gpt-4o-mini", tpm=10_000_000),
            Deployment("o4", "o4-mini", tpm=10_000_000),
        ],
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel.zero(),
        seed=1,
    )
    with EmbeddedEmulator(config) as emu:
        yield emu


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for var in ("AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TEST_API_KEY", API_KEY)
    return {"TEST_API_KEY": API_KEY}
