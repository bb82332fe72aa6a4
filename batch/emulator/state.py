"""The running server's mutable state, owned by its event loop.

Everything here is touched only from the server's loop thread (``EmbeddedEmulator`` hops onto
that loop to read stats), so no locks are needed. ``reset()`` returns the server to a fresh
start without rebinding its port: counters, log, windows, the latency RNG and the fault
rules' clock, counts and RNGs (the rules themselves stay installed).

The OCR engine (``ocr.OcrEngine``: worker threads and Tesseract models) is created on the
first OCR request, so a server that never reads a page never loads Tesseract.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .answers import AnswerBuilder
from .config import Deployment, EmulatorConfig
from .fault_injector import FaultInjector
from .faults import Fault
from .images import ImageInspector
from .limits import DeploymentLimiter, Window, make_window
from .models import ModelRules, rules_for
from .ocr import OcrEngine
from .stats import UNROUTED, DeploymentStats, RequestLog, VisionStats
from .tokens import tokenizer

__all__ = ["REQUEST_ID_KEY", "STATE_KEY", "DeploymentRuntime", "EmulatorState", "VisionRuntime"]

#: The Vision resource's calls-per-second window.
VISION_WINDOW_S = 1.0


@dataclass(slots=True)
class DeploymentRuntime:
    deployment: Deployment
    rules: ModelRules
    limiter: DeploymentLimiter
    stats: DeploymentStats = field(default_factory=DeploymentStats)


@dataclass(slots=True)
class VisionRuntime:
    """The Azure AI Vision resource: its calls-per-second window and counters."""

    window: Window
    stats: VisionStats = field(default_factory=VisionStats)


class EmulatorState:
    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.started_at = time.time()
        self.rng = random.Random(config.seed)
        self.log = RequestLog(config.log_limit)
        self.images = ImageInspector()
        self.answers = AnswerBuilder(seed=config.seed, answer_tokens=config.answer_tokens)
        self.unrouted = DeploymentStats()
        self.runtimes: dict[str, DeploymentRuntime] = {}
        self._http: aiohttp.ClientSession | None = None
        #: Set when the app starts shutting down: hangs and trickles end early.
        self.stopping = asyncio.Event()
        now = clock()
        for dep in config.deployments:
            rules = rules_for(dep.model)
            tokenizer(rules.tokenizer)  # load the vocabulary now (once per process), not on a request
            self.runtimes[dep.name] = DeploymentRuntime(dep, rules, self._limiter(dep, now))
        self.faults = FaultInjector(config.faults, seed=config.seed, now=now)
        self.vision = VisionRuntime(self._vision_window(now))
        self._ocr: OcrEngine | None = None

    def set_faults(self, rules: Sequence[Fault]) -> None:
        """Replace the fault rules (their clock, counts and RNGs restart). A rule naming an
        unknown deployment is a ``ValueError``."""
        for i, rule in enumerate(rules):
            if rule.deployment is not None and rule.deployment not in self.runtimes:
                raise ValueError(f"faults[{i}]: unknown deployment {rule.deployment!r}")
        self.faults.install(rules, self.clock())

    def faults_json(self) -> dict[str, Any]:
        return self.faults.to_json(self.clock())

    def _limiter(self, dep: Deployment, now: float) -> DeploymentLimiter:
        return DeploymentLimiter(
            tpm=dep.tpm,
            request_capacity=dep.request_capacity,
            token_window_s=dep.token_window_s,
            request_window_s=dep.request_window_s,
            mode=self.config.window_mode,
            now=now,
        )

    def _vision_window(self, now: float) -> Window:
        return make_window(self.config.window_mode, self.config.vision_tps, VISION_WINDOW_S, now)

    def ocr(self) -> OcrEngine:
        """The OCR engine, created on first use."""
        if self._ocr is None:
            self._ocr = OcrEngine(self.config.ocr_threads)
        return self._ocr

    def stats_for(self, name: str | None) -> DeploymentStats:
        runtime = self.runtimes.get(name) if name is not None else None
        return runtime.stats if runtime is not None else self.unrouted

    async def http(self) -> aiohttp.ClientSession:
        """The session used to fetch http(s) image URLs, created on first use."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._ocr is not None:
            engine, self._ocr = self._ocr, None
            await asyncio.to_thread(engine.close)  # waits for reads still running

    def reset(self) -> None:
        now = self.clock()
        self.started_at = time.time()
        self.rng = random.Random(self.config.seed)
        self.log.clear()
        self.unrouted = DeploymentStats()
        for runtime in self.runtimes.values():
            runtime.stats = DeploymentStats()
            runtime.limiter = self._limiter(runtime.deployment, now)
        self.vision.window = self._vision_window(now)
        self.vision.stats = VisionStats()
        if self._ocr is not None:
            self._ocr.reset_counters()
        self.faults.restart(now)

    def stats_json(self) -> dict[str, Any]:
        """The ``/_emulator/stats`` document. Call from the server's loop thread: the
        ``thread_s`` figure is that thread's CPU time."""
        now = self.clock()
        deployments: dict[str, Any] = {}
        faults: dict[str, int] = {}
        for name, runtime in self.runtimes.items():
            for kind, count in runtime.stats.faults.items():
                faults[kind] = faults.get(kind, 0) + count
            dep = runtime.deployment
            remaining_tokens, remaining_requests = runtime.limiter.remaining(now)
            deployments[name] = {
                "model": dep.model,
                "model_family": runtime.rules.family,
                "tpm": dep.tpm,
                "rpm": dep.requests_per_minute,
                "request_capacity": dep.request_capacity,
                "token_window_s": dep.token_window_s,
                "request_window_s": dep.request_window_s,
                "remaining_tokens": remaining_tokens,
                "remaining_requests": remaining_requests,
                **runtime.stats.to_json(),
            }
        for kind, count in self.vision.stats.faults.items():
            faults[kind] = faults.get(kind, 0) + count
        return {
            "started_at": self.started_at,
            "uptime_s": time.time() - self.started_at,
            "requests_received": self.log.total,
            "charge_rule": self.config.charge_rule,
            "window_mode": self.config.window_mode,
            "cpu": {"process_s": time.process_time(), "thread_s": time.thread_time()},
            "faults": dict(sorted(faults.items())),
            "deployments": deployments,
            UNROUTED: self.unrouted.to_json(),
            "vision": {
                "tps": self.config.vision_tps,
                "remaining_calls": max(0, self.vision.window.capacity - self.vision.window.used(now)),
                **self.vision.stats.to_json(),
            },
            "ocr": self._ocr_json(),
        }

    def _ocr_json(self) -> dict[str, Any]:
        """The OCR engine's work: pages Tesseract read, cache hits and the wall time of the reads."""
        if self._ocr is None:
            return {
                "loaded": False,
                "threads": self.config.ocr_threads,
                "pages_read": 0,
                "cache_hits": 0,
                "seconds": 0.0,
            }
        return {"loaded": True, **self._ocr.stats_json()}


#: Where the app keeps its ``EmulatorState``.
STATE_KEY = web.AppKey("emulator_state", EmulatorState)
#: The id sent back as ``x-request-id`` / ``apim-request-id``, set by the app's middleware.
REQUEST_ID_KEY = web.RequestKey("emulator_request_id", str)
