"""Issue 13 item 5: the job's tpm/rpm are a ceiling; the deployment's x-ratelimit-limit-* headers may
lower them, never raise them (a user sharing a deployment keeps a job below its quota)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from batch.emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel
from batch.send.ratelimit.limiter import RateLimiter
from tests.support import API_KEY, FakeTime, Sample

ROOT = Path(__file__).resolve().parents[1]


def test_headers_lower_the_configured_limits_but_never_raise_them() -> None:
    ft = FakeTime()
    lim = RateLimiter(20_000, 120, clock=ft, sleep=ft.sleep)
    lim._learn_limits({"x-ratelimit-limit-tokens": "60000", "x-ratelimit-limit-requests": "60"})
    assert (lim.tpm, lim.server_tpm, lim.request_capacity) == (20_000, 60_000, 20)
    lim._learn_limits({"x-ratelimit-limit-tokens": "8000", "x-ratelimit-limit-requests": "8"})
    assert (lim.tpm, lim.request_capacity) == (8000, 8)
    unset = RateLimiter(None, None, clock=ft, sleep=ft.sleep)
    unset._learn_limits({"x-ratelimit-limit-tokens": "60000", "x-ratelimit-limit-requests": "60"})
    assert (unset.tpm, unset.request_capacity) == (60_000, 60)


async def test_a_ceiling_ignores_other_traffic_below_the_deployments_limit() -> None:
    """--tpm 20000 on a 60k deployment that others use for 30k: our 20k still fit (the server has room)."""
    ft = FakeTime()
    lim = RateLimiter(20_000, None, clock=ft, sleep=ft.sleep, utilisation=1.0, burst_factor=None, skew=0.0)
    first = await lim.acquire(1000)
    lim.on_response(first, {"x-ratelimit-limit-tokens": "60000", "x-ratelimit-remaining-tokens": "29000"})
    sends = [(await lim.acquire(1000)).sent_at for _ in range(19)]
    assert sends == [1000.0] * 19  # 20 x 1000 = our ceiling, and 30k + 20k < 60k
    late = await lim.acquire(1000)
    assert late.sent_at >= 1060.0  # the 21st waits for our own first to age out


def test_tpm_flag_is_a_ceiling_below_the_deployments_limit(tmp_path: Path, env: dict[str, str]) -> None:
    """A 60k deployment, --tpm 20000: the emulator's books show at most ~20k charged in any 60 s."""
    s = Sample(tmp_path, 80)
    config = EmulatorConfig(
        deployments=[Deployment("gpt-4o", "gpt-4o", tpm=60_000)],
        api_keys=frozenset({API_KEY}),
        latency=LatencyModel(0.05, 0.0, 0.0),
        seed=5,
    )
    with EmbeddedEmulator(config) as emu:
        job = s.job(emu.url, max_tokens=300)
        cmd = [sys.executable, "-m", "batch", "run", str(job), "--no-progress", "--tpm", "20000"]
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # 80 rows of ~400 tokens need ~32k: a 20k ceiling admits ~20k at once, the rest only after 60 s.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and emu.stats()["deployments"]["gpt-4o"]["tokens_charged"] < 15_000:
            time.sleep(0.2)
        time.sleep(4.0)  # long enough for a client that believed the 60k header to send everything
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        st = emu.stats()["deployments"]["gpt-4o"]
    charged = [tokens for _t, _admitted, tokens, _throttled in st["timeline"]]
    assert sum(charged) >= 15_000, "the run barely started"
    worst = max(sum(charged[i : i + 60]) for i in range(len(charged)))
    assert worst <= 20_000, f"{worst} tokens charged in one minute against --tpm 20000"
    assert st["throttled_tokens"] + st["throttled_requests"] == 0
