"""`autotm-graph {zoo,train,info}`: the command line of the graph tool.

Each subcommand is a thin layer over a pure function (``zoo.build``, ``info.describe``, the
training-graph builder), so tests call :func:`main` in-process. The ``train`` subcommand lives
in its own package and is imported only when asked for, so ``zoo`` and ``info`` start fast and
keep working in a build without it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from autotm_schemas import EXIT_CODES_HELP, BadInputError, ToolError, write_bytes_atomic
from autotm_schemas.cli import ArgumentParser, add_verbose, parse_or_exit, run_tool
from autotm_schemas.units import format_bytes

from . import __version__, info, zoo
from .ir import load_graph

PROG = "autotm-graph"
#: --weights embed writes every value into the file; protobuf refuses messages over 2 GiB.
EMBED_LIMIT_BYTES = 2**31 - 2**24

ZOO_EPILOG = f"""examples:
  {PROG} zoo --list
  {PROG} zoo resnet50-mini -o resnet50-mini.onnx
  {PROG} zoo vgg416 --batch 320 -o vgg416.onnx     (650 GB footprint, a few hundred KB file)
  {PROG} zoo resnet50-tiny --weights embed -o - | {PROG} info -

{EXIT_CODES_HELP}"""


class TrainUnavailableError(ToolError):
    """The training-graph builder is not part of this build: exit 1."""


def _train_command() -> ModuleType:
    """The train subcommand's module, imported on demand."""
    try:
        from .train import command
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("autotm_graph.train"):
            raise TrainUnavailableError(
                f"train: the training-graph builder (autotm_graph.train.command) is not part of "
                f"this build ({exc})"
            ) from None
        raise
    return command


def _add_zoo(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "zoo",
        help="write a network of the model zoo as an ONNX inference graph",
        description="Write one of the AutoTM paper's networks (or a reduced variant) as an "
        "ONNX inference graph: input 'images' (NCHW float32), output 'logits', static shapes "
        "at --batch, opset 17. With --weights seeded (the default) parameters are shaped graph "
        "inputs with a seeded initialiser spec in metadata 'autotm.init', so the file stays "
        "small whatever the network; --weights embed writes the values.",
        epilog=ZOO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="network name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the networks and exit")
    parser.add_argument("--json", action="store_true", help="with --list: print JSON")
    parser.add_argument("--batch", type=int, help="batch size (default: the network's)")
    parser.add_argument("--image-size", type=int, help="image height and width in pixels")
    parser.add_argument("--classes", type=int, help="number of classes of the classifier")
    parser.add_argument(
        "--weights",
        choices=("seeded", "embed"),
        default="seeded",
        help="seeded: shapes and init specs only (default); embed: write the values",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed of the init specs")
    parser.add_argument("-o", "--output", metavar="OUT.onnx", help="output file, '-' for stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    add_verbose(parser)
    parser.set_defaults(body=_run_zoo)


def _add_info(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info",
        help="print nodes, op histogram, parameter bytes, peak live bytes and lifetimes",
        description=info.__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE.onnx", help="an ONNX graph, '-' for stdin")
    parser.add_argument(
        "--json", action="store_true", help="print JSON, with every tensor's lifetime"
    )
    parser.add_argument(
        "--top", type=int, default=10, help="tensors in the text table (default 10)"
    )
    add_verbose(parser)
    parser.set_defaults(body=_run_info)


def _add_train(subparsers: Any, load: bool) -> None:
    """The train subcommand; its arguments come from autotm_graph.train.command when ``load``."""
    help_text = "turn an inference graph into the training-iteration graph"
    if not load:
        parser = subparsers.add_parser("train", help=help_text, add_help=False)
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        parser.set_defaults(body=_run_train)
        return
    try:
        command = _train_command()
    except TrainUnavailableError as exc:
        parser = subparsers.add_parser("train", help=help_text, add_help=False)
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        parser.set_defaults(body=_run_train, train_error=exc)
        return
    parser = subparsers.add_parser(
        "train",
        help=help_text,
        description=getattr(command, "DESCRIPTION", command.__doc__),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_arguments(parser)
    if not any("--verbose" in action.option_strings for action in parser._actions):
        add_verbose(parser)
    parser.set_defaults(body=_run_train, train_module=command)


def build_parser(argv: Sequence[str] = ()) -> ArgumentParser:
    """The parser; train's own arguments are loaded only when ``argv`` asks for train."""
    parser = ArgumentParser(
        prog=PROG,
        description="autotm-graph: the AutoTM model zoo, the training-graph builder and "
        "graph statistics. Run `autotm-graph SUBCOMMAND --help` for each.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", dest="verbose_global", action="store_true", help="tracebacks"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    subcommand = next((a for a in argv if not a.startswith("-")), None)
    _add_zoo(subparsers)
    _add_train(subparsers, load=subcommand == "train")
    _add_info(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parsed = parse_or_exit(build_parser(argv), argv)
    if isinstance(parsed, int):
        return parsed
    parsed.verbose = bool(getattr(parsed, "verbose", False) or parsed.verbose_global)
    return run_tool(PROG, parsed.body, parsed)


# -- zoo ---------------------------------------------------------------------------------------


def list_networks() -> list[dict[str, Any]]:
    """Every network with its defaults and parameter count (from shapes, at batch 1)."""
    rows = []
    for entry in zoo.NETWORKS.values():
        b = zoo.builder(entry.name, batch=1)
        rows.append(
            {
                "name": entry.name,
                "family": entry.family,
                "size": entry.size,
                "image_size": entry.image_size,
                "batch": entry.batch,
                "classes": entry.classes,
                "parameters": b.parameter_count(),
                "parameters_with_running_stats": b.parameter_count(trainable_only=False),
                "nodes": len(b.nodes),
                "description": entry.description,
            }
        )
    return rows


def _list_text(rows: list[dict[str, Any]]) -> str:
    header = ("name", "image", "batch", "params", "nodes", "description")
    table = [
        (
            r["name"],
            f"{r['image_size']}x{r['image_size']}",
            str(r["batch"]),
            f"{r['parameters'] / 1e6:.2f}M" if r["parameters"] >= 10**5 else f"{r['parameters']:,}",
            str(r["nodes"]),
            r["description"],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in [header, *table]
    ]
    lines.append(
        "params: trainable parameters at the default image size and classes; batch: the "
        "default --batch (the paper's conventional batch for full networks)"
    )
    return "\n".join(lines) + "\n"


def _run_zoo(args: argparse.Namespace) -> int:
    if args.list:
        rows = list_networks()
        sys.stdout.write(json.dumps(rows, indent=2) + "\n" if args.json else _list_text(rows))
        return 0
    if not args.name:
        raise BadInputError("zoo: expected a network NAME or --list")
    entry = zoo.network(args.name)
    if not args.output:
        raise BadInputError("zoo: expected -o OUT.onnx (or -o - for stdout)")
    b = zoo.builder(entry.name, args.batch, args.image_size, args.classes, args.seed)
    if args.weights == "embed" and b.parameter_bytes() > EMBED_LIMIT_BYTES:
        raise BadInputError(
            f"--weights embed: {entry.name} has {format_bytes(b.parameter_bytes())} of "
            "parameters, over what one ONNX file holds; expected --weights seeded"
        )
    data = b.model(args.weights).SerializeToString()
    write_bytes_atomic(args.output, data)
    if not args.quiet:
        print(
            f"{PROG}: wrote {'stdout' if args.output == '-' else args.output}: {entry.name} "
            f"batch {b.batch}, {b.image_size}x{b.image_size} images, {len(b.nodes)} nodes, "
            f"{b.parameter_count():,} parameters ({args.weights}), {format_bytes(len(data))}",
            file=sys.stderr,
        )
    return 0


# -- info --------------------------------------------------------------------------------------


def _run_info(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise BadInputError(f"--top: expected a non-negative integer, got {args.top}")
    if args.file == "-":
        with tempfile.TemporaryDirectory(prefix="autotm-graph-") as folder:
            path = Path(folder) / "stdin.onnx"
            path.write_bytes(sys.stdin.buffer.read())
            graph = load_graph(path)
            graph.path = "-"
    else:
        graph = load_graph(args.file)
    summary = info.describe(graph, with_lifetimes=args.json or args.top > 0)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    else:
        sys.stdout.write(info.render_text(summary, top=args.top))
    return 0


# -- train -------------------------------------------------------------------------------------


def _run_train(args: argparse.Namespace) -> int:
    error = getattr(args, "train_error", None)
    if error is not None:
        raise error
    module = getattr(args, "train_module", None) or _train_command()
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
