"""autotm-report: draw the paper's figures from runs, plans and profiles into REPORT_DIR.

    autotm-report RUNS... [--plans PLAN...] [--profiles DIR...] [--price-ratio 2.1] -o REPORT_DIR

The command is a thin shell over :func:`make_report`, which tests call in-process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from autotm_schemas import EXIT_CODES_HELP, EXIT_OK, BadInputError
from autotm_schemas.cli import ArgumentParser, add_verbose, parse_or_exit, run_tool
from autotm_schemas.progress import Progress

from . import __version__
from .claims import claims, claims_frame
from .figure import Figure, Omitted, Options
from .figures import ALL_FIGURES
from .inputs import Inputs, load_inputs
from .output import report_folder
from .page import Drawn, render_page
from .render import write_figure
from .tables import plans_table, profiles_table, runs_table

PROG = "autotm-report"

EPILOG = f"""\
inputs:
  RUNS, --plans and --profiles take files, folders (searched recursively), quoted globs
  ('out/runs/*.json'), or - for standard input (one JSON document, or paths one per line).

output (REPORT_DIR, replaced whole; an existing folder must be an earlier report or empty):
  index.html                 every figure, the claims table and summary tables; works offline
  figures/<id>.png|svg       each figure drawn by vl-convert
  figures/<id>.vl.json       its Vega-Lite spec, data inline
  data/<id>.parquet          the numbers behind it
  data/{{claims,runs,plans,profiles}}.parquet

example:
  autotm-report out/runs --plans out/plans --profiles out/profiles -o out/report

{EXIT_CODES_HELP}
"""


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG,
        description="Draw the AutoTM paper's figures (7 to 12, ILP statistics) and an offline "
        "HTML report from run records, plans and profiles.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="*", metavar="RUNS", help="run.json files (autotm-execute)")
    parser.add_argument(
        "--plans", nargs="+", default=[], metavar="PLAN", help="plan.json files (autotm-optimize)"
    )
    parser.add_argument(
        "--profiles", nargs="+", default=[], metavar="DIR", help="profile folders (autotm-profile)"
    )
    parser.add_argument(
        "--price-ratio",
        type=float,
        default=2.1,
        metavar="P",
        help="price of fast memory per GB over slow memory's, for Fig. 9 (default 2.1, DRAM:PMM)",
    )
    parser.add_argument(
        "--case-study",
        metavar="NETWORK",
        help="network of the Fig. 10 case study (default: the one named like 'inception')",
    )
    parser.add_argument("-o", "--output", required=True, metavar="REPORT_DIR", help="report folder")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_verbose(parser)
    return parser


def draw_figures(
    inputs: Inputs, options: Options, root: Path, quiet: bool = True, stream: TextIO | None = None
) -> tuple[list[Drawn], list[Omitted]]:
    """Build every figure the inputs support and write its files under ``root``."""
    drawn: list[Drawn] = []
    omitted: list[Omitted] = []
    with Progress("drawing figures", len(ALL_FIGURES), stream=stream, quiet=quiet) as progress:
        for spec in ALL_FIGURES:
            figure: Figure | None = spec.build(inputs, options)
            if figure is None:
                omitted.append(Omitted(spec.id, spec.title, spec.needs))
            else:
                drawn.append(Drawn(figure, write_figure(figure, root)))
            progress.advance(1, spec.id)
    return drawn, omitted


def make_report(
    inputs: Inputs,
    options: Options,
    target: Path,
    quiet: bool = True,
    stream: TextIO | None = None,
) -> tuple[list[Drawn], list[Omitted]]:
    """Write the whole report folder atomically; return what was drawn and what was not."""
    with report_folder(target) as root:
        drawn, omitted = draw_figures(inputs, options, root, quiet, stream)
        found = claims(inputs)
        summary = {
            "runs": runs_table(inputs),
            "plans": plans_table(inputs),
            "profiles": profiles_table(inputs),
        }
        (root / "data").mkdir(exist_ok=True)
        claims_frame(found).write_parquet(root / "data" / "claims.parquet")
        for name, df in summary.items():
            df.write_parquet(root / "data" / f"{name}.parquet")
        page = render_page(drawn, omitted, found, summary, inputs.warnings)
        (root / "index.html").write_text(page, encoding="utf-8")
    return drawn, omitted


def _body(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    if not args.runs and not args.plans and not args.profiles:
        raise BadInputError("no inputs: give run.json files, --plans or --profiles")
    if args.output == "-":
        raise BadInputError("-o: the report is a folder; give its path, not -")
    if not args.price_ratio > 0:
        raise BadInputError(f"--price-ratio: expected a positive number, got {args.price_ratio}")
    inputs = load_inputs(args.runs, args.plans, args.profiles, stdin=stdin)
    for warning in inputs.warnings:
        print(f"{PROG}: warning: {warning}", file=stderr)
    options = Options(price_ratio=args.price_ratio, case_study=args.case_study)
    target = Path(args.output)
    _, omitted = make_report(inputs, options, target, quiet=args.quiet, stream=stderr)
    for item in omitted:
        print(f"{PROG}: {item.title} not drawn: it needs {item.needs}", file=stderr)
    print(target / "index.html", file=stdout)
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run autotm-report; return the exit code (0 done, 1 bug, 2 bad input)."""
    err = stderr or sys.stderr
    parsed = parse_or_exit(build_parser(), argv)
    if isinstance(parsed, int):
        return parsed
    return run_tool(
        PROG, lambda a: _body(a, stdin or sys.stdin, stdout or sys.stdout, err), parsed, err
    )


if __name__ == "__main__":
    sys.exit(main())
