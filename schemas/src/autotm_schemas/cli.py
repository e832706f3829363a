"""The shape every AutoTM command shares: ``main(argv, stdin, stdout, stderr) -> int``.

A tool writes its real work as a function that takes parsed arguments and returns an exit
code; :func:`run_tool` turns exceptions into one-line messages with documented exit codes,
prints a traceback only with ``-v``, and keeps quiet on a broken pipe (``| head``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TextIO

from .errors import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, ToolError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors as exit 2 through :class:`ToolError` handling."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="print a traceback on failure")


def run_tool(
    prog: str,
    body: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    stderr: TextIO | None = None,
) -> int:
    """Run ``body(args)`` and map what it raises to an exit code and a single line on stderr."""
    err = stderr or sys.stderr
    verbose = bool(getattr(args, "verbose", False))
    try:
        return body(args)
    except ToolError as exc:
        if verbose:
            traceback.print_exc(file=err)
        print(f"{prog}: error: {exc}", file=err)
        return exc.exit_code
    except BrokenPipeError:
        # The reader went away (`| head`): not an error. Point stdout at /dev/null so the
        # interpreter's final flush does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=err)
        return 130
    except Exception as exc:
        if verbose:
            traceback.print_exc(file=err)
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{prog}: internal error: {detail} (rerun with -v for the traceback)", file=err)
        return EXIT_FAILURE


def parse_or_exit(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace | int:
    """Parse argv; return the exit code instead of raising SystemExit (so tests call main)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_BAD_INPUT
