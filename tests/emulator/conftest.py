"""Fixtures for the emulator tests: a zero-latency embedded emulator and an HTTP caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from emulator_helpers import KEY, Caller, zero_config

from batch.emulator import EmbeddedEmulator


@pytest.fixture
def emulator() -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator(zero_config(api_keys=frozenset({KEY}))) as emu:
        yield emu


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def caller(emulator: EmbeddedEmulator, session: aiohttp.ClientSession) -> Caller:
    return Caller(session, emulator.url)
