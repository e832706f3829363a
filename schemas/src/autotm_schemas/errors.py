"""Errors every tool reports the same way, and the exit codes they map to.

Exit codes (documented in every tool's --help):
    0  done
    1  unexpected failure (a bug; rerun with -v for the traceback)
    2  bad input or usage (a file that breaks its contract, an unknown option)
    3  infeasible request (for example a fast-memory budget below what one kernel needs)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INFEASIBLE = 3

EXIT_CODES_HELP = """exit codes:
  0  done
  1  unexpected failure (rerun with -v for the traceback)
  2  bad input or usage: the message names the file, the field or node, and what was expected
  3  infeasible request (for example a fast-memory budget below what one kernel needs)"""


class ToolError(Exception):
    """An error a tool reports in one line, with a documented exit code."""

    exit_code = EXIT_FAILURE


class BadInputError(ToolError):
    """Input that breaks its contract or a usage mistake: exit 2."""

    exit_code = EXIT_BAD_INPUT


class InfeasibleError(ToolError):
    """A well-formed request that cannot be satisfied: exit 3."""

    exit_code = EXIT_INFEASIBLE


class SchemaError(BadInputError):
    """A document or table that does not match its contract.

    The message always reads ``FILE: FIELD: expected WHAT`` so a user can find the spot.
    """

    def __init__(self, file: str, field: str, expected: str) -> None:
        self.file = file
        self.field = field
        self.expected = expected
        super().__init__(f"{file}: {field}: expected {expected}")
