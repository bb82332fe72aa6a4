"""Command line: parse, call the library, turn BatchError into a message and an exit code.

Exit codes: 0 every row has an outcome (some may be per-row errors); 1 the run stopped early
(state kept, resumable); 2 bad job, manifest or arguments (nothing sent). The arguments are
:mod:`.parser`'s; what each command does, :mod:`.commands`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..core import BatchError, RunStopped
from .commands import COMMANDS, EXIT_BAD_INPUT, EXIT_OK, EXIT_STOPPED, print_summary, run
from .parser import build_parser, subparser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from ..emulator import main as emulator_main

        return emulator_main(args_list[1:])
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(args_list)
        if extra:  # name the command's own usage, not the top-level one
            subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    try:
        # "emulator" is dispatched above; argparse hands back "run", "estimate" or "report"
        return COMMANDS.get(args.command, run)(args)
    except RunStopped as exc:  # its message is the run's summary, printed like a finished run's
        print_summary(str(exc))
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
