"""``batch emulator``: the emulator as a command, its flags and environment, and the banner it prints.

Flags and environment variables become an :class:`~.config.EmulatorConfig` (:func:`config_from_args`);
:func:`main` serves it until SIGINT/SIGTERM. In-process use is :class:`~.server.EmbeddedEmulator`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from .app import create_app
from .batch_config import parse_batch_deployment_spec
from .config import CHARGE_RULES, WINDOW_MODES, Deployment, EmulatorConfig, parse_deployment_spec
from .faults import FAULT_KINDS, Fault, parse_fault_specs
from .latency import parse_latency
from .models import is_known_model, rules_for
from .server import SHUTDOWN_GRACE_S, bound_port

__all__ = ["DEFAULT_DEPLOYMENT", "build_parser", "config_from_args", "main"]


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
    parser.add_argument(
        "--batch-deployment",
        action="append",
        default=[],
        metavar="NAME=MODEL[:ENQUEUED_TOKENS]",
        help="add a Global-Batch deployment (repeatable; enqueued-token quota defaults to the model's documented one)",
    )
    parser.add_argument(
        "--batch-seconds", type=float, help="seconds a batch takes from validating to completed (default 30)"
    )
    parser.add_argument(
        "--batch-expire-seconds", type=float, help="a batch still running after this long expires (default never)"
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
    deployments += [parse_batch_deployment_spec(spec) for spec in args.batch_deployment]
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
    if args.batch_seconds is not None:
        changes["batch_seconds"] = args.batch_seconds
    if args.batch_expire_seconds is not None:
        changes["batch_expire_seconds"] = args.batch_expire_seconds
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
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        url = f"http://{host}:{bound_port(runner)}"
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
