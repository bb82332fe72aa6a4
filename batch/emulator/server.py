"""Running the emulator: in-process on its own thread (``EmbeddedEmulator``) or as a command.

``EmbeddedEmulator`` gives the server its own event loop in a daemon thread, so a caller's
loop (the batch client, a test) can block, busy itself or finish without starving the server,
and the server's CPU time can be measured apart from the caller's. Reads of stats and the log
hop onto the server loop, so the state needs no locks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from .app import create_app
from .config import CHARGE_RULES, WINDOW_MODES, Deployment, EmulatorConfig, parse_deployment_spec
from .faults import FAULT_KINDS, Fault, parse_fault_specs
from .latency import parse_latency
from .models import is_known_model, rules_for
from .state import STATE_KEY, EmulatorState

__all__ = ["EmbeddedEmulator", "main"]

T = TypeVar("T")
_STARTUP_TIMEOUT_S = 30.0
#: How long a stopping server lets in-flight requests finish before cancelling them.
_SHUTDOWN_GRACE_S = 2.0


class EmbeddedEmulator:
    """The emulator served from a daemon thread. Use as ``with`` or ``async with``::

    with EmbeddedEmulator(config) as emu:
        post(f"{emu.url}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", ...)
        emu.stats()["deployments"]["gpt-4o"]["admitted"]
    """

    def __init__(self, config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._state: EmulatorState | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> EmbeddedEmulator:
        """Start serving; returns once the port is bound (raises if binding failed)."""
        if self._thread is not None:
            raise RuntimeError("EmbeddedEmulator is already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="batch-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(_STARTUP_TIMEOUT_S):
            raise RuntimeError("emulator did not start in time")
        error = self._startup_error()
        if error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"emulator failed to start: {error}") from error
        return self

    def _startup_error(self) -> BaseException | None:
        """Set by the server thread; a method so type checkers don't assume it is still None."""
        return self._error

    def stop(self) -> None:
        """Stop serving and join the thread (in-flight requests get a short grace period)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(_SHUTDOWN_GRACE_S + 10.0)
        self._thread = None
        self._loop = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:  # report any startup failure to the starting thread
                self._error = exc
                return
            self._loop = loop
            self._ready.set()
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self._ready.set()
            loop.close()

    async def _startup(self) -> None:
        app = create_app(self.config)
        self._state = app[STATE_KEY]
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_GRACE_S)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self._requested_port)
        await site.start()
        self._port = _bound_port(runner)

    # -- access ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("EmbeddedEmulator is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stats(self) -> dict[str, Any]:
        """Same document as ``GET /_emulator/stats`` (``cpu.thread_s`` is the server thread's)."""
        return self._on_loop(lambda state: state.stats_json())

    def requests(self) -> list[dict[str, Any]]:
        """The request log, as ``GET /_emulator/requests`` returns it."""
        return self._on_loop(lambda state: state.log.to_json())

    def reset(self) -> None:
        """Forget counters, log and window contents and restart the fault rules' clock, counts
        and RNGs (as ``POST /_emulator/reset``)."""
        self._on_loop(lambda state: state.reset())

    def set_faults(self, faults: Sequence[Fault]) -> None:
        """Replace the fault rules; their clock, counts and RNGs restart (as ``PUT /_emulator/faults``)."""
        rules = list(faults)
        self._on_loop(lambda state: state.set_faults(rules))

    def clear_faults(self) -> None:
        """Remove every fault rule (as ``DELETE /_emulator/faults``)."""
        self._on_loop(lambda state: state.set_faults([]))

    def faults(self) -> dict[str, Any]:
        """The installed rules and their hit counts (as ``GET /_emulator/faults``)."""
        return self._on_loop(lambda state: state.faults_json())

    def _on_loop(self, fn: Callable[[EmulatorState], T]) -> T:
        loop, state = self._loop, self._state
        if loop is None or state is None:
            raise RuntimeError("EmbeddedEmulator is not started")

        async def call() -> T:
            return fn(state)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30.0)

    # -- context managers ------------------------------------------------------------------

    def __enter__(self) -> EmbeddedEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedEmulator:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("emulator bound no TCP address")


# -- command line ----------------------------------------------------------------------------

DEFAULT_DEPLOYMENT = "gpt-4o=gpt-4o:60000"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch emulator",
        description="Serve an Azure-OpenAI-compatible vision chat-completions emulator on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8011, help="port to bind (default 8011; 0 = any free port)")
    parser.add_argument(
        "--deployment",
        action="append",
        default=[],
        metavar="NAME=MODEL[:TPM]",
        help=f"add a deployment (repeatable; default {DEFAULT_DEPLOYMENT}); replaces the config file's list",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML file with EmulatorConfig fields")
    parser.add_argument("--latency", help="realistic | zero | BASE_S,PER_TOKEN_S,JITTER (default realistic)")
    parser.add_argument("--charge-rule", choices=CHARGE_RULES, help="admission charge rule (default prompt+max)")
    parser.add_argument("--window-mode", choices=WINDOW_MODES, help="rate-limit windows (default sliding)")
    parser.add_argument("--answer-tokens", type=int, help="tokens in a full answer (default 60)")
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept only these keys (repeatable; also EMULATOR_API_KEYS=k1,k2); default: any non-empty key",
    )
    parser.add_argument(
        "--vision-api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept only these Ocp-Apim-Subscription-Key values on the Vision read route (repeatable; also "
        "EMULATOR_VISION_API_KEYS=k1,k2); default: the --api-key rule",
    )
    parser.add_argument("--vision-tps", type=int, help="Vision read calls per second for the resource (default 10)")
    parser.add_argument("--ocr-threads", type=int, help="OCR worker threads, one Tesseract engine each (default 2)")
    parser.add_argument("--seed", type=int, help="seed for answers, latency jitter and fault rates (default 0)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:RATE][,key=value...]",
        help="inject a fault (repeatable; replaces the config file's list), e.g. 429:0.1, "
        "hang:0.01,hang_s=30, 500:1,match=ab12cd,count=2; keys: rate, start_s, end_s, match, deployment, "
        f"count, hang_s, trickle_s, retry_after_s; kinds: {', '.join(FAULT_KINDS)}",
    )
    return parser


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> EmulatorConfig:
    """Merge the config file (if any), the flags and ``EMULATOR_API_KEYS``; flags win."""
    env = os.environ if environ is None else environ
    base = EmulatorConfig.from_toml(args.config) if args.config else None
    deployments: list[Deployment]
    if args.deployment:
        deployments = [parse_deployment_spec(spec) for spec in args.deployment]
    elif base is not None:
        deployments = list(base.deployments)
    else:
        deployments = [parse_deployment_spec(DEFAULT_DEPLOYMENT)]
    keys = _keys(args.api_key, env.get("EMULATOR_API_KEYS", ""), base.api_keys if base else None)
    vision_keys = _keys(
        args.vision_api_key, env.get("EMULATOR_VISION_API_KEYS", ""), base.vision_api_keys if base else None
    )
    config = base if base is not None else EmulatorConfig(deployments=deployments)
    changes: dict[str, Any] = {"deployments": deployments, "api_keys": keys, "vision_api_keys": vision_keys}
    if args.latency is not None:
        changes["latency"] = parse_latency(args.latency)
    if args.charge_rule is not None:
        changes["charge_rule"] = args.charge_rule
    if args.window_mode is not None:
        changes["window_mode"] = args.window_mode
    if args.answer_tokens is not None:
        changes["answer_tokens"] = args.answer_tokens
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.vision_tps is not None:
        changes["vision_tps"] = args.vision_tps
    if args.ocr_threads is not None:
        changes["ocr_threads"] = args.ocr_threads
    if args.fault:
        changes["faults"] = parse_fault_specs(args.fault)
    return dataclasses.replace(config, **changes)


def _keys(flags: Sequence[str], env_value: str, from_file: frozenset[str] | None) -> frozenset[str] | None:
    """The union of the flags', the environment's (comma-separated) and the file's keys; None if none."""
    keys = set(flags)
    keys.update(k.strip() for k in env_value.split(",") if k.strip())
    keys.update(from_file or ())
    return frozenset(keys) if keys else None


def main(argv: list[str] | None = None) -> int:
    """``batch emulator``: serve until SIGINT/SIGTERM. Returns 0, or 2 for bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"batch emulator: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        print(f"batch emulator: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


async def _serve(config: EmulatorConfig, host: str, port: int) -> int:
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        url = f"http://{host}:{_bound_port(runner)}"
        for line in _banner(config, url):
            print(line)
        sys.stdout.flush()
        await _wait_for_signal()
    finally:
        await runner.cleanup()
    print("emulator stopped")
    return 0


def _banner(config: EmulatorConfig, url: str) -> Sequence[str]:
    auth = "any non-empty key" if config.api_keys is None else f"{len(config.api_keys)} configured key(s)"
    latency = config.latency
    lines = [
        f"emulator listening on {url}",
        f"  auth: {auth}; charge rule: {config.charge_rule}; windows: {config.window_mode}; "
        f"latency: {latency.base_s}s + {latency.per_token_s}s/token (jitter {latency.jitter})",
    ]
    for dep in config.deployments:
        family = rules_for(dep.model).family
        note = "" if is_known_model(dep.model) else " (unknown model: using gpt-4o rules)"
        lines.append(
            f"  deployment {dep.name}: model {dep.model} [{family}]{note}, {dep.tpm} TPM, "
            f"{dep.requests_per_minute} RPM ({dep.request_capacity} per {dep.request_window_s:g} s)"
        )
    vision_auth = "any non-empty key" if config.vision_keys is None else f"{len(config.vision_keys)} configured key(s)"
    lines.append(f"  vision read: {config.vision_tps} calls/s, auth: {vision_auth}; OCR threads: {config.ocr_threads}")
    for rule in config.faults:
        lines.append(f"  fault {_describe_fault(rule)}")
    first = config.deployments[0].name
    lines.append(f"  e.g. POST {url}/openai/deployments/{first}/chat/completions?api-version=2024-10-21")
    return lines


def _describe_fault(rule: Fault) -> str:
    defaults = Fault(rule.kind)
    parts = [f"{rule.kind}:{rule.rate:g}"]
    for name in ("start_s", "end_s", "match", "deployment", "count", "hang_s", "trickle_s", "retry_after_s"):
        value = getattr(rule, name)
        if value != getattr(defaults, name):
            parts.append(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}")
    return ",".join(parts)


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
