"""``autotm-profile train.onnx -o PROFILE_DIR``: the kernel table of a training graph.

A thin command over :func:`autotm_profile.profiler.profile`; see tools/profile/README.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from autotm_execute.tiers import add_tier_arguments, tier_options_from_args
from autotm_schemas import EXIT_CODES_HELP, EXIT_OK, BadInputError
from autotm_schemas.cli import ArgumentParser, add_verbose, parse_or_exit, run_tool
from autotm_schemas.units import parse_bytes

from . import __version__
from .configs import DEFAULT_FIXED_BELOW, DEFAULT_MAX_VARIED
from .copies import DEFAULT_SIZES
from .profiler import Options, profile
from .timing import DEFAULT_BUDGET_S, DEFAULT_TOLERANCE, Protocol

PROG = "autotm-profile"

DESCRIPTION = """Time every kernel of a training graph in isolation, under every placement of
its inputs and outputs in the fast and slow tier (on a GPU: everything in device memory), and
measure copy bandwidth between the tiers. Identical kernels are timed once; timings are cached
per machine and reused across runs and networks. Writes PROFILE_DIR with kernels.parquet,
nodes.parquet, tensors.parquet, machine.json and profile.json, atomically."""

EPILOG = f"""example:
  autotm-graph zoo vgg19-mini --batch 16 -o vgg.onnx
  autotm-graph train vgg.onnx --batch 16 -o train.onnx
  autotm-profile train.onnx -o profile/
  autotm-profile big.onnx --measure-batch 16 -o big-profile/   # time at 16, scale up

{EXIT_CODES_HELP}"""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("graph", metavar="TRAIN.onnx", help="training graph (autotm-graph train)")
    parser.add_argument(
        "-o", "--output", metavar="PROFILE_DIR", required=True, help="folder to write"
    )
    add_tier_arguments(parser)
    timing = parser.add_argument_group("timing")
    timing.add_argument(
        "--measure-batch",
        metavar="B",
        type=int,
        help="time kernels at batch B and scale their times linearly to the graph's batch "
        "(provenance scaled:B)",
    )
    timing.add_argument(
        "--time-budget",
        metavar="S",
        type=float,
        default=DEFAULT_BUDGET_S,
        help=f"seconds of timed calls per configuration before giving up on a stable median "
        f"(default {DEFAULT_BUDGET_S})",
    )
    timing.add_argument(
        "--tolerance",
        metavar="R",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="stop once the 95%% confidence half-width of the median is within R of it "
        f"(default {DEFAULT_TOLERANCE})",
    )
    timing.add_argument(
        "--fixed-below",
        metavar="BYTES",
        default=str(DEFAULT_FIXED_BELOW),
        help=f"tensors smaller than this stay in the fast tier and are not varied "
        f"(default {DEFAULT_FIXED_BELOW}; 0 varies every tensor but constants)",
    )
    timing.add_argument(
        "--max-varied",
        metavar="K",
        type=int,
        default=DEFAULT_MAX_VARIED,
        help=f"at most 2^K configurations per kernel: beyond K-1 tensors the smallest vary "
        f"together (default {DEFAULT_MAX_VARIED})",
    )
    timing.add_argument(
        "--copy-sizes",
        metavar="SIZES",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="comma-separated copy sizes for the bandwidth measurement "
        "(default 64KiB,1MiB,8MiB,32MiB)",
    )
    cache = parser.add_argument_group("cache")
    cache.add_argument(
        "--cache",
        metavar="DIR",
        help="kernel cache folder (default $AUTOTM_CACHE_DIR, else $XDG_CACHE_HOME/autotm, "
        "else ~/.cache/autotm)",
    )
    cache.add_argument(
        "--recache", action="store_true", help="time everything again, replacing cached timings"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_verbose(parser)
    return parser


def options_from_args(args: argparse.Namespace) -> Options:
    if args.time_budget <= 0:
        raise BadInputError(f"--time-budget: expected a positive number, got {args.time_budget}")
    if not 0 < args.tolerance < 1:
        raise BadInputError(f"--tolerance: expected a number in (0, 1), got {args.tolerance}")
    if args.max_varied < 1:
        raise BadInputError(f"--max-varied: expected at least 1, got {args.max_varied}")
    if args.measure_batch is not None and args.measure_batch < 1:
        raise BadInputError(f"--measure-batch: expected a positive batch, got {args.measure_batch}")
    return Options(
        tiers=tier_options_from_args(args),
        measure_batch=args.measure_batch,
        recache=args.recache,
        cache_dir=Path(args.cache) if args.cache else None,
        protocol=Protocol(budget_s=args.time_budget, tolerance=args.tolerance),
        fixed_below=parse_bytes(args.fixed_below, "--fixed-below"),
        max_varied=args.max_varied,
        quiet=args.quiet,
        copy_sizes=parse_sizes(args.copy_sizes),
    )


def parse_sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(parse_bytes(part.strip(), "--copy-sizes") for part in text.split(",") if part)
    if not sizes or min(sizes) < 1:
        raise BadInputError(f"--copy-sizes: expected positive byte sizes, got {text!r}")
    return sizes


def main(
    argv: Sequence[str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    parsed = parse_or_exit(build_parser(), argv)
    if isinstance(parsed, int):
        return parsed
    err = stderr or sys.stderr

    def body(args: argparse.Namespace) -> int:
        profile(args.graph, Path(args.output), options_from_args(args), err)
        return EXIT_OK

    return run_tool(PROG, body, parsed, err)


if __name__ == "__main__":
    sys.exit(main())
