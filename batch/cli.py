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
from .run import run_job
from .send import KeyCredential

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
    run.add_argument(
        "--tpm",
        type=_positive_int,
        metavar="N",
        help="tokens per minute this job may use: a ceiling (the deployment's x-ratelimit-limit-tokens "
        "can only lower it, never raise it)",
    )
    run.add_argument(
        "--rpm",
        type=_positive_int,
        metavar="N",
        help="requests per minute this job may use: a ceiling, like --tpm (default 6 per 1000 TPM)",
    )
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


def _add_estimate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    est = sub.add_parser(
        "estimate",
        help="estimate a job's tokens, cost and time (no API calls)",
        description="Estimate tokens, cost and run time from the manifest and image headers alone: "
        "nothing is sent and no image is downloaded.",
    )
    est.add_argument("job", metavar="JOB.toml")
    est.add_argument("--manifest", metavar="PATH", help="manifest to use instead of the job's")
    est.add_argument("--json", action="store_true", help="print the estimate as JSON")
    est.add_argument("--detail", choices=("low", "high", "auto"), help="estimate every row at this detail")
    est.add_argument("--model", metavar="NAME", help="estimate on this model instead of the job's")
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


def _estimate(args: argparse.Namespace) -> int:
    from .estimate import estimate_job, render_estimate

    spec = load_spec(args.job)
    spec = with_overrides(spec, manifest=args.manifest, tpm=args.tpm, rpm=args.rpm, max_tokens=args.max_tokens)
    report = estimate_job(
        spec,
        detail_override=args.detail,
        model_override=args.model,
        compare=args.compare,
        prices=args.prices,
        expected_output=args.expected_output,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_estimate(report))
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from .report import build_report, render_report, write_html

    report = build_report(Path(args.results), prices=args.prices, top=args.top, tpm=args.tpm, id_column=args.id_column)
    if args.html is not None:
        write_html(report, args.html)
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_report(report), flush=True)
    if args.html is not None:
        print(f"HTML report: {args.html}", file=sys.stderr)
    return EXIT_OK


_COMMANDS = {"estimate": _estimate, "report": _report}


def _run(args: argparse.Namespace) -> int:
    spec = load_spec(args.job)
    spec = with_overrides(
        spec,
        manifest=args.manifest,
        out=args.out,
        endpoint=args.endpoint,
        deployment=args.deployment,
        api_version=args.api_version,
        tpm=args.tpm,
        rpm=args.rpm,
        max_tokens=args.max_tokens,
        concurrency=args.concurrency,
        retry_errors=args.retry_errors,
    )
    spec = apply_endpoint_env(spec, os.environ)
    show = not args.no_progress
    if spec.uses_embedded_emulator:
        return _run_on_embedded_emulator(spec, show)
    summary = asyncio.run(run_job(spec, show_progress=show))
    print(summary.render())
    return EXIT_OK


def _run_on_embedded_emulator(spec: JobSpec, show: bool) -> int:
    from .emulator import Deployment, EmbeddedEmulator, EmulatorConfig, LatencyModel

    key = secrets.token_urlsafe(24)  # lives only in this process
    tpm = spec.emulator.tpm or spec.limits.tpm or 60000
    latency = LatencyModel.zero() if spec.emulator.latency == "zero" else LatencyModel.realistic()
    config = EmulatorConfig(
        deployments=[Deployment(name=spec.endpoint.deployment, model=spec.endpoint.model, tpm=tpm)],
        api_keys=frozenset({key}),
        latency=latency,
    )
    with EmbeddedEmulator(config) as emu:
        print(
            f"no endpoint configured: using the embedded emulator at {emu.url} "
            f"(deployment {spec.endpoint.deployment!r}, model {spec.endpoint.model}, {tpm} TPM)",
            file=sys.stderr,
        )
        url = emu.url + ("/v1" if spec.endpoint.kind == "openai" else "")
        spec = replace(spec, endpoint=replace(spec.endpoint, url=url))
        credential = KeyCredential(key, bearer=spec.endpoint.kind == "openai")
        environ = dict(os.environ)
        if spec.ocr.vision_endpoint is None:  # the emulator also serves the Vision routes
            spec = replace(spec, ocr=replace(spec.ocr, vision_endpoint=emu.url))
            environ[spec.ocr.vision_key_env] = key
        summary = asyncio.run(run_job(spec, credential=credential, environ=environ, show_progress=show))
    print(summary.render())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from .emulator import main as emulator_main

        return emulator_main(args_list[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    try:
        # "emulator" is dispatched above; argparse hands back "run", "estimate" or "report"
        return _COMMANDS.get(args.command, _run)(args)
    except RunStopped as exc:
        print(f"batch: {exc}", file=sys.stderr)
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
