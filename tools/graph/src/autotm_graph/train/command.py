"""The `autotm-graph train` subcommand: argument parsing and file handling only.

The lead's cli.py registers :func:`add_arguments` on the ``train`` sub-parser and calls
:func:`run`; both work standalone too (``python -m autotm_graph.train.command``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from autotm_schemas import EXIT_CODES_HELP, BadInputError, write_bytes_atomic
from autotm_schemas.cli import ArgumentParser, add_verbose, parse_or_exit, run_tool

from ..ir import load_model
from .build import LOSSES, OPTIMIZERS, TrainOptions, build_training_model

DESCRIPTION = (
    "Turn an inference ONNX graph into the ONNX graph of one training iteration: forward, "
    "SoftmaxCrossEntropyLoss over the logits, gradients (onnxruntime-training ops), and SGD "
    "updates, with static shapes at --batch and nodes in execution order. Takes the zoo's "
    "graphs and image classifiers exported by torch.onnx.export (either exporter, opset 13 to "
    "20, eval or training mode; torchvision's CNNs and its ViT, Swin and ConvNeXt "
    "transformers among them), re-batched to --batch; an unsupported op exits 2 naming every "
    "unsupported op type and a node of each."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="IN.onnx", help="inference graph (logits = output 0)")
    parser.add_argument("--batch", type=int, required=True, help="batch size of the iteration")
    parser.add_argument(
        "--loss", choices=LOSSES, default=LOSSES[0], help="loss (default: %(default)s)"
    )
    parser.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=OPTIMIZERS[0],
        help="optimizer (default: %(default)s)",
    )
    parser.add_argument(
        "--lr", type=float, default=0.01, help="learning rate (default: %(default)s)"
    )
    parser.add_argument("--network", help="network name for the metadata (default: IN's stem)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT.onnx",
        help="training graph to write ('-' for stdout)",
    )


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    options = TrainOptions(
        batch=args.batch,
        learning_rate=args.lr,
        loss=args.loss,
        optimizer=args.optimizer,
        network=args.network,
    )
    training = build_training_model(model, options, source=str(args.model))
    data = training.SerializeToString()
    if len(data) >= 2**31 - 1:
        raise BadInputError(f"{args.model}: the training graph exceeds ONNX's 2 GiB file limit")
    write_bytes_atomic(args.output, data)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="autotm-graph train",
        description=DESCRIPTION,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    add_verbose(parser)
    args = parse_or_exit(parser, argv)
    if isinstance(args, int):
        return args
    return run_tool("autotm-graph train", run, args)


if __name__ == "__main__":
    sys.exit(main())
