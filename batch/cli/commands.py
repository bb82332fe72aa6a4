"""What each ``batch`` command does: estimate, report, cancel, and run (on the embedded emulator when
no endpoint is configured), with the summary printed on one stream."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from dataclasses import replace
from pathlib import Path

from ..core import JobSpec, apply_endpoint_env, load_spec, with_deployments, with_overrides
from ..run import RunOptions, cancel_batches, run_batch_route, run_job
from ..send import KeyCredential, credential_for

EXIT_OK, EXIT_STOPPED, EXIT_BAD_INPUT = 0, 1, 2


def _estimate(args: argparse.Namespace) -> int:
    from ..estimate import estimate_job, render_estimate

    spec = load_spec(args.job)
    spec = with_overrides(
        spec,
        manifest=args.manifest,
        tpm=args.tpm,
        rpm=args.rpm,
        max_tokens=args.max_tokens,
        schema=args.schema,
        catalogue=args.catalogue,
    )
    report = estimate_job(
        spec,
        detail_override=args.detail,
        model_override=args.model,
        compare=args.compare,
        prices=args.prices,
        expected_output=args.expected_output,
        headers_only=args.headers_only,
        ocr_sample=args.ocr_sample,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_estimate(report))
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from ..report import build_report, failed_rows, render_report, write_failed_rows, write_html

    if args.errors is not None:
        write_failed_rows(failed_rows(Path(args.results), args.errors, args.id_column), sys.stdout, as_json=args.json)
        return EXIT_OK
    report = build_report(Path(args.results), prices=args.prices, top=args.top, tpm=args.tpm, id_column=args.id_column)
    if args.html is not None:
        write_html(report, args.html)
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_report(report), flush=True)
    if args.html is not None:
        print(f"HTML report: {args.html}", file=sys.stderr)
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    spec = apply_endpoint_env(with_overrides(load_spec(args.job), out=args.out, route="batch"), os.environ)
    ids = asyncio.run(cancel_batches(spec, credential_for(spec.endpoint, os.environ)))
    print(f"asked the service to cancel {len(ids)} batch(es); run the job again to collect what they finished")
    return EXIT_OK


COMMANDS = {"estimate": _estimate, "report": _report, "cancel": _cancel}


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.job)
    spec = with_overrides(
        spec,
        manifest=args.manifest,
        out=args.out,
        endpoint=args.endpoint,
        api_version=args.api_version,
        catalogue=args.catalogue,
        tpm=args.tpm,
        rpm=args.rpm,
        max_tokens=args.max_tokens,
        concurrency=args.concurrency,
        retry_errors=args.retry_errors,
        schema=args.schema,
        route=args.route,
        poll_seconds=args.poll_seconds,
    )
    spec = apply_endpoint_env(with_deployments(spec, args.deployment), os.environ)
    shown: RunOptions = {"show_progress": not args.no_progress, "progress_every": args.progress_every}
    if spec.uses_embedded_emulator:
        return _run_on_embedded_emulator(spec, shown, args)
    return _go(spec, shown, args)


def _go(spec: JobSpec, options: RunOptions, args: argparse.Namespace) -> int:
    """Run the job on its route and print the summary (the batch route may detach after submitting)."""
    if spec.run.route == "batch":
        environ = options.get("environ") or os.environ
        credential = options.get("credential") or credential_for(spec.endpoint, environ)
        if (announce := options.get("on_send")) is not None:
            announce()
        batch = run_batch_route(spec, credential, detach=args.detach, finish_online=args.finish_online, environ=environ)
        summary = asyncio.run(batch)
        if not summary.complete:
            print(f"submitted; run the same command again (without --detach) to collect into {spec.output.path}")
            return EXIT_OK
    else:
        summary = asyncio.run(run_job(spec, **options))
    print_summary(summary.render())
    return EXIT_OK


def print_summary(text: str) -> None:
    """The run's summary: one stream (stderr, beside the bar), one format, finished or stopped."""
    print(text, file=sys.stderr, flush=True)


def _run_on_embedded_emulator(spec: JobSpec, shown: RunOptions, args: argparse.Namespace) -> int:
    from ..emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel

    key = secrets.token_urlsafe(24)  # lives only in this process
    tpm = spec.emulator.tpm or spec.limits.tpm or 60000
    latency = LatencyModel.zero() if spec.emulator.latency == "zero" else LatencyModel.realistic()
    batch = spec.run.route == "batch"  # a Global-Batch deployment whose batches take 2 s, polled every second
    config = EmulatorConfig(
        deployments=[
            Deployment(ep.deployment, ep.model, tpm=10**9 if batch else ep.tpm or tpm, rpm=ep.rpm, global_batch=batch)
            for ep in spec.deployments
        ],
        api_keys=frozenset({key}),
        latency=latency,
        batch_seconds=2.0,
    )
    if batch:
        spec = replace(spec, run=replace(spec.run, poll_seconds=min(spec.run.poll_seconds, 1.0)))
    with EmbeddedEmulator(config) as emu:
        announce = (
            f"no endpoint configured: using the embedded emulator at {emu.url} "
            f"(deployment {spec.endpoint.deployment!r}, model {spec.endpoint.model}, {tpm} TPM)"
        )
        url = emu.url + ("/v1" if spec.endpoint.kind == "openai" else "")
        pool = tuple(replace(ep, url=url) for ep in spec.endpoints)
        spec = replace(spec, endpoint=replace(spec.endpoint, url=url), endpoints=pool)
        credential = KeyCredential(key, bearer=spec.endpoint.kind == "openai")
        environ = dict(os.environ)
        if spec.ocr.vision_endpoint is None:  # the emulator also serves the Vision routes
            spec = replace(spec, ocr=replace(spec.ocr, vision_endpoint=emu.url))
            environ[spec.ocr.vision_key_env] = key
        announce_it = lambda: print(announce, file=sys.stderr, flush=True)  # noqa: E731 - once rows will go
        return _go(spec, {**shown, "credential": credential, "environ": environ, "on_send": announce_it}, args)
