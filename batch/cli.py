"""Command line: parse, call the library, turn BatchError into a message and an exit code.

Exit codes: 0 every row has an outcome (some may be per-row errors); 1 the run stopped early
(state kept, resumable); 2 bad job, manifest or arguments (nothing sent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from .core import BatchError, JobSpec, RunStopped, apply_endpoint_env, load_spec, with_overrides
from .run import RunOptions, cancel_batches, run_batch_route, run_job
from .send import KeyCredential, credential_for

EXIT_OK, EXIT_STOPPED, EXIT_BAD_INPUT = 0, 1, 2


def _whole_number(minimum: int, meaning: str) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``, with a message that says why."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be {meaning}")
        return value

    return parse


_positive_int = _whole_number(1, "at least 1")
_non_negative_int = _whole_number(0, "0 or more")


def _share(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number such as 0.6 or 60%") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1 (0% and 100%)")
    return value


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give one or more names separated by commas")
    return names


_CATALOGUE_HELP = (
    "extra model catalogue (TOML, the format of batch/data/models.toml) for models the tool has no "
    "image-token rules for; or [endpoint].catalogue in the job"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch",
        description="Push Parquet manifests of images through vision chat-completions endpoints.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_estimate(sub)
    _add_report(sub)
    sub.add_parser(
        "emulator",
        help="serve the Azure-compatible emulator",
        add_help=False,
        description="Serve the Azure-compatible emulator (see `batch emulator --help`).",
    )
    return parser


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run (or resume) a job", description="Run a job; rerunning resumes it.")
    run.add_argument("job", metavar="JOB.toml")
    run.add_argument("--manifest", metavar="PATH", help="manifest to use instead of the job's")
    run.add_argument("--out", metavar="PATH", help="result Parquet path instead of the job's")
    run.add_argument("--endpoint", metavar="URL", help="endpoint URL (else the job's, else env, else emulator)")
    run.add_argument("--deployment", metavar="NAME")
    run.add_argument("--api-version", metavar="V")
    run.add_argument("--catalogue", type=Path, metavar="FILE", help=_CATALOGUE_HELP)
    run.add_argument("--tpm", type=_positive_int, metavar="N", help="deployment tokens per minute")
    run.add_argument("--rpm", type=_positive_int, metavar="N", help="deployment requests per minute")
    run.add_argument("--max-tokens", type=_positive_int, metavar="N", help="default output token limit")
    run.add_argument("--concurrency", type=_non_negative_int, metavar="N", help="requests in flight (0 = auto)")
    run.add_argument(
        "--retry-errors",
        nargs="?",
        const=["*"],
        type=_names,
        metavar="CODES",
        help="send again the rows that ended in these error codes (comma-separated; none given: every error)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--schema", metavar="FILE", help="JSON Schema for structured answers instead of [output].schema")
    every = "when stderr is not a terminal (a log, a pipe): one plain progress line every S seconds (10)"
    run.add_argument("--progress-every", type=_positive_int, default=10, metavar="S", help=every)
    run.add_argument("--route", choices=["online", "batch"], help="online chat calls, or the Batch API (half price)")
    run.add_argument("--poll-seconds", type=_non_negative_int, metavar="N", help="batch route: seconds between polls")
    run.add_argument("--detach", action="store_true", help="batch route: submit and exit; run again to collect")
    run.add_argument(
        "--finish-online", action="store_true", help="batch route: send what expired batches left undone online"
    )
    cancel = sub.add_parser("cancel", help="cancel the active batches of a batch-route job")
    cancel.add_argument("job", metavar="JOB.toml")
    cancel.add_argument("--out", metavar="PATH", help="result Parquet path instead of the job's")


def _add_estimate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    est = sub.add_parser(
        "estimate",
        help="estimate a job's tokens, cost and time (no API calls)",
        description="Estimate tokens, cost and run time from the manifest and the images on disk: "
        "nothing is sent and no image is downloaded.",
    )
    _add_estimate_reading(est)
    est.add_argument("job", metavar="JOB.toml")
    est.add_argument("--manifest", metavar="PATH", help="manifest to use instead of the job's")
    est.add_argument("--json", action="store_true", help="print the estimate as JSON")
    est.add_argument("--detail", choices=("low", "high", "auto"), help="estimate every row at this detail")
    est.add_argument("--model", metavar="NAME", help="estimate on this model instead of the job's")
    est.add_argument("--catalogue", type=Path, metavar="FILE", help=_CATALOGUE_HELP)
    est.add_argument("--compare", type=_names, metavar="M1,M2", help="models for the what-if table")
    est.add_argument("--prices", type=Path, metavar="FILE", help="price table adding to / replacing the built-in one")
    est.add_argument(
        "--expected-output",
        type=_share,
        default=0.6,
        metavar="SHARE",
        help="assumed share of max_tokens a reply uses (default 0.6)",
    )
    est.add_argument("--tpm", type=_positive_int, metavar="N", help="deployment tokens per minute")
    est.add_argument("--rpm", type=_positive_int, metavar="N", help="deployment requests per minute")
    est.add_argument("--max-tokens", type=_positive_int, metavar="N", help="default output token limit")
    est.add_argument("--schema", metavar="FILE", help="JSON Schema for structured answers instead of [output].schema")


def _add_estimate_reading(est: argparse.ArgumentParser) -> None:
    est.add_argument(
        "--headers-only",
        action="store_true",
        help="read only image headers (faster); by default local PNG/JPEG/WebP files get the run's quick "
        "structural check, so a truncated file is skipped here as the run would refuse it",
    )
    est.add_argument(
        "--ocr-sample",
        type=_non_negative_int,
        default=3,
        metavar="N",
        help="OCR jobs: read N sampled requests' pages to measure the hint's tokens, then extrapolate "
        "(default 3, about a second a page; 0: the hint is not counted, and the output says so)",
    )


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rep = sub.add_parser(
        "report",
        help="real tokens and cost of a finished run, and how far the estimate was off",
        description="Report on a result Parquet: billed tokens and cost (standard and Batch prices), "
        "breakdowns by detail, finish reason and status, estimate vs actual, the most expensive rows. "
        "Streams the file: any size works in bounded memory.",
    )
    rep.add_argument("results", metavar="RESULTS.parquet")
    rep.add_argument("--html", type=Path, metavar="PATH", help="also write a self-contained HTML page with charts")
    rep.add_argument("--json", action="store_true", help="print the report as JSON")
    rep.add_argument("--prices", type=Path, metavar="FILE", help="price table adding to / replacing the built-in one")
    rep.add_argument("--top", type=_non_negative_int, default=10, metavar="N", help="rows in the top tables (10)")
    rep.add_argument("--tpm", type=_positive_int, metavar="N", help="deployment limit to draw on the timeline")
    rep.add_argument("--id-column", metavar="NAME", help="column naming each row (default: id)")
    rep.add_argument(
        "--errors",
        nargs="*",
        metavar="CODE",
        help="instead of the report, list the rows that are not ok (failed, filtered, refused before "
        "sending): row, id, status, error code, attempts, message; only these codes if given",
    )


def _estimate(args: argparse.Namespace) -> int:
    from .estimate import estimate_job, render_estimate

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
    from .report import build_report, failed_rows, render_report, write_failed_rows, write_html

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


_COMMANDS = {"estimate": _estimate, "report": _report, "cancel": _cancel}


def _run(args: argparse.Namespace) -> int:
    spec = load_spec(args.job)
    spec = with_overrides(
        spec,
        manifest=args.manifest,
        out=args.out,
        endpoint=args.endpoint,
        deployment=args.deployment,
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
    spec = apply_endpoint_env(spec, os.environ)
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
    _print_summary(summary.render())
    return EXIT_OK


def _print_summary(text: str) -> None:
    """The run's summary: one stream (stderr, beside the bar), one format, finished or stopped."""
    print(text, file=sys.stderr, flush=True)


def _run_on_embedded_emulator(spec: JobSpec, shown: RunOptions, args: argparse.Namespace) -> int:
    from .emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel

    key = secrets.token_urlsafe(24)  # lives only in this process
    tpm = spec.emulator.tpm or spec.limits.tpm or 60000
    latency = LatencyModel.zero() if spec.emulator.latency == "zero" else LatencyModel.realistic()
    batch = spec.run.route == "batch"  # a Global-Batch deployment whose batches take 2 s, polled every second
    config = EmulatorConfig(
        deployments=[
            Deployment(
                name=spec.endpoint.deployment,
                model=spec.endpoint.model,
                tpm=10**9 if batch else tpm,
                global_batch=batch,
            )
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
        spec = replace(spec, endpoint=replace(spec.endpoint, url=url))
        credential = KeyCredential(key, bearer=spec.endpoint.kind == "openai")
        environ = dict(os.environ)
        if spec.ocr.vision_endpoint is None:  # the emulator also serves the Vision routes
            spec = replace(spec, ocr=replace(spec.ocr, vision_endpoint=emu.url))
            environ[spec.ocr.vision_key_env] = key
        announce_it = lambda: print(announce, file=sys.stderr, flush=True)  # noqa: E731 - once rows will go
        return _go(spec, {**shown, "credential": credential, "environ": environ, "on_send": announce_it}, args)


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    chosen: argparse.ArgumentParser = subs.choices.get(command, parser)
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from .emulator import main as emulator_main

        return emulator_main(args_list[1:])
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(args_list)
        if extra:  # name the command's own usage, not the top-level one
            _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    try:
        # "emulator" is dispatched above; argparse hands back "run", "estimate" or "report"
        return _COMMANDS.get(args.command, _run)(args)
    except RunStopped as exc:  # its message is the run's summary, printed like a finished run's
        _print_summary(str(exc))
        return EXIT_STOPPED
    except BatchError as exc:
        print(f"batch: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("batch: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_STOPPED
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
