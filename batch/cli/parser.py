"""The ``batch`` command's arguments: subcommands, their flags and the checks argparse makes on each."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

__all__ = ["build_parser", "subparser"]


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
    run.add_argument(
        "--deployment",
        action="append",
        metavar="NAME[:TPM[:RPM]]",
        help="deployment to send to; repeat it for a pool of deployments on one endpoint",
    )
    run.add_argument("--api-version", metavar="V")
    run.add_argument("--catalogue", type=Path, metavar="FILE", help=_CATALOGUE_HELP)
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


def subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    chosen: argparse.ArgumentParser = subs.choices.get(command, parser)
    return chosen
