"""autotm-optimize: place every tensor of a training iteration in fast or slow memory.

    autotm-optimize PROFILE_DIR --formulation F (--ratio S:F | --fast-limit BYTES) [-o plan.json]
    autotm-optimize explain plan.json [--profile PROFILE_DIR]
    autotm-optimize verify plan.json [--profile PROFILE_DIR]

Each is a thin layer over the package's functions, so tests call ``main(argv)`` in-process.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from autotm_schemas import EXIT_CODES_HELP, EXIT_OK, BadInputError, read_document, write_document
from autotm_schemas.cli import ArgumentParser, add_verbose, parse_or_exit, run_tool
from autotm_schemas.units import parse_bytes, parse_ratio

from .explain import explain
from .optimize import OptimizeOptions, optimize
from .plan import FORMULATIONS, Plan
from .problem import Problem, load_problem
from .reductions import ReductionSettings
from .solve import DEFAULT_BACKEND, SOLVER_CHOICES, SolveOptions
from .verify import verify

PROG = "autotm-optimize"
SUBCOMMANDS = ("explain", "verify")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _gap(text: str) -> float:
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a relative gap in [0, 1) such as 0.01 or 1%, got {text!r}"
        )
    return value


def optimize_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description=(
            "Decide, for every tensor of a profiled training iteration, where it lives (fast or "
            "slow memory) and when it moves, under a fast-memory budget, and write plan.json. "
            "Subcommands: 'explain plan.json', 'verify plan.json'."
        ),
        epilog=EXIT_CODES_HELP
        + "\n\nexample:\n  autotm-optimize profile/ --formulation synchronous --ratio 4:1 -o plan.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "profile_dir", metavar="PROFILE_DIR", help="directory written by autotm-profile"
    )
    parser.add_argument(
        "--formulation",
        "-f",
        required=True,
        choices=FORMULATIONS,
        help="static, synchronous, asynchronous (the paper's ILPs) or a baseline: numa "
        "(first touch), all-fast, all-slow",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--ratio", help="slow:fast memory ratio as in the paper (4:1 = fast limit is footprint / 5)"
    )
    budget.add_argument(
        "--fast-limit", help="fast-memory limit in bytes; units allowed (12GB, 1.5GiB)"
    )
    parser.add_argument(
        "-o", "--output", default="-", help="plan file to write ('-' = stdout, the default)"
    )
    parser.add_argument(
        "--solver",
        choices=SOLVER_CHOICES,
        default=DEFAULT_BACKEND,
        help="ILP backend; auto (the default): HiGHS for static and synchronous, SCIP for "
        "asynchronous, as measured fastest",
    )
    parser.add_argument(
        "--time-limit",
        type=_positive_float,
        default=60.0,
        help="seconds for the whole optimization: solves, address assignment and re-solves "
        "(default 60)",
    )
    parser.add_argument(
        "--gap",
        type=_gap,
        default=0.01,
        help="relative optimality gap to stop at (default 0.01 = 1%%)",
    )
    parser.add_argument(
        "--threads", type=int, default=max(1, min(8, os.cpu_count() or 1)), help="solver threads"
    )
    parser.add_argument(
        "--async-window",
        type=int,
        default=2,
        help="asynchronous: how many kernels before a use (or after a write) a copy may overlap (default 2)",
    )
    parser.add_argument(
        "--no-reduce",
        action="store_true",
        help="solve the full model (no tiny-tensor pinning, no collapsing)",
    )
    parser.add_argument(
        "--export-model",
        metavar="FILE",
        help="also write the ILP to FILE (.mps, .lp, or .pb for an MPModelProto)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_verbose(parser)
    return parser


def plan_parser(command: str) -> ArgumentParser:
    what = {
        "explain": "Summarise a plan: moves, bytes moved, fast share, predicted time.",
        "verify": "Check a plan against its profile; print every rule it breaks (exit 2 if any).",
    }[command]
    parser = ArgumentParser(
        prog=f"{PROG} {command}",
        description=what,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("plan", metavar="PLAN", help="plan.json ('-' = stdin)")
    parser.add_argument(
        "--profile", metavar="PROFILE_DIR", help="the profile (default: the path the plan records)"
    )
    add_verbose(parser)
    return parser


def _budget(args: argparse.Namespace) -> tuple[tuple[float, float] | None, int | None]:
    ratio = parse_ratio(args.ratio) if args.ratio else None
    limit = parse_bytes(args.fast_limit, "--fast-limit") if args.fast_limit else None
    if (
        args.formulation in ("static", "synchronous", "asynchronous", "numa")
        and ratio is None
        and limit is None
    ):
        raise BadInputError(f"--formulation {args.formulation}: expected --ratio or --fast-limit")
    return ratio, limit


def _run_optimize(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    ratio, limit = _budget(args)
    if args.threads < 1 or args.async_window < 1:
        raise BadInputError("--threads and --async-window: expected at least 1")
    problem = load_problem(args.profile_dir)
    options = OptimizeOptions(
        formulation=args.formulation,
        ratio=ratio,
        ratio_text=args.ratio,
        fast_limit=limit,
        solve=SolveOptions(args.solver, args.time_limit, args.gap, args.threads),
        reductions=ReductionSettings(enabled=not args.no_reduce),
        async_window=args.async_window,
        export_model=args.export_model,
    )
    plan = optimize(problem, options, stream=stderr, quiet=args.quiet)
    doc = plan.to_document()
    if args.output == "-":
        from autotm_schemas.documents import dumps_document, validate_document

        validate_document(doc, "plan", "<stdout>")
        stdout.write(dumps_document(doc))
        stdout.flush()
    else:
        write_document(args.output, doc, "plan")
    if not args.quiet:
        print(
            f"{PROG}: {plan.formulation}: predicted {plan.predicted.total_s:.6g} s, "
            f"{len(plan.moves)} moves, fast pool {plan.fast_pool_bytes} of {plan.fast_limit_bytes} bytes"
            + ("" if args.output == "-" else f" -> {args.output}"),
            file=stderr,
        )
    return EXIT_OK


def _load_plan(args: argparse.Namespace) -> tuple[Plan, Problem | None]:
    plan = Plan.from_document(read_document(args.plan, "plan"))
    where = args.profile or plan.profile_path
    if where is None or (args.profile is None and not Path(where).is_dir()):
        return plan, None
    return plan, load_problem(where)


def _run_explain(args: argparse.Namespace, stdout: TextIO) -> int:
    plan, problem = _load_plan(args)
    stdout.write(explain(plan, problem))
    return EXIT_OK


def _run_verify(args: argparse.Namespace, stdout: TextIO) -> int:
    plan, problem = _load_plan(args)
    if problem is None:
        raise BadInputError(
            f"{args.plan}: profile.path: expected an existing PROFILE_DIR (or pass --profile)"
        )
    problems = verify(plan, problem)
    for line in problems:
        stdout.write(f"{args.plan}: {line}\n")
    if problems:
        raise BadInputError(f"{args.plan}: the plan breaks {len(problems)} rule(s) (listed above)")
    stdout.write(f"{args.plan}: valid\n")
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if args_list and args_list[0] in SUBCOMMANDS:
        command = args_list[0]
        parsed = parse_or_exit(plan_parser(command), args_list[1:])
        if isinstance(parsed, int):
            return parsed
        body = (
            (lambda a: _run_explain(a, out))
            if command == "explain"
            else (lambda a: _run_verify(a, out))
        )
        return run_tool(f"{PROG} {command}", body, parsed, err)
    parsed = parse_or_exit(optimize_parser(), args_list)
    if isinstance(parsed, int):
        return parsed
    return run_tool(PROG, lambda a: _run_optimize(a, out, err), parsed, err)


if __name__ == "__main__":
    sys.exit(main())
