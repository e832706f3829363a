"""Benchmark: time and peak memory to build each full-size zoo network and its training graph.

Each step runs as the command a user types (`autotm-graph zoo`, `autotm-graph train`,
`autotm-graph info`), in its own process, so the peak resident set size is that step's alone
(``os.wait4`` returns the child's ``ru_maxrss``) and the time includes interpreter start-up
and imports. Batches are the AutoTM paper's: the conventional ones (Inception v4 1024,
ResNet-200 512, VGG19 2048, DenseNet-264 512) and the large, about-650-GB ones (Inception v4
6144, VGG416 320, ResNet-200 2560, DenseNet-264 3072); ResNet-50, not in the paper's
experiments, at 256. Targets: under 10 s and under 1 GB per step; the table prints each
measurement as a ratio of its target (below 1 meets it).

    .venv/bin/python benchmarks/graph_build.py              # everything (a few minutes)
    .venv/bin/python benchmarks/graph_build.py --only vgg19 resnet50 --no-train
    .venv/bin/python benchmarks/graph_build.py --minis      # the embedded suite's sizes

``--minis`` instead sizes the ``-mini`` networks of ``make reproduce``: nodes, forward GFLOP,
the training graph's footprint, and the median time of one forward pass and of one training
iteration in onnxruntime (CPU provider, 2 threads), side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET_SECONDS = 10.0
TARGET_BYTES = 1 << 30

CASES: list[tuple[str, int, str]] = [
    ("inception_v4", 1024, "conventional"),
    ("resnet200", 512, "conventional"),
    ("vgg19", 2048, "conventional"),
    ("densenet264", 512, "conventional"),
    ("resnet50", 256, "torchvision"),
    ("inception_v4", 6144, "large"),
    ("vgg416", 320, "large"),
    ("resnet200", 2560, "large"),
    ("densenet264", 3072, "large"),
]


@dataclass(frozen=True)
class Step:
    network: str
    batch: int
    phase: str
    seconds: float
    max_rss_bytes: int
    ok: bool
    detail: str  # file size, footprint, or the error line


def _tool() -> list[str]:
    return [sys.executable, "-c", "import sys; from autotm_graph.cli import main; sys.exit(main())"]


def run_step(argv: list[str]) -> tuple[float, int, int, str, str]:
    """Run one command; return (seconds, child max RSS bytes, exit code, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([*_tool(), *argv], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (
            seconds,
            usage.ru_maxrss * 1024,  # kilobytes on Linux
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def measure(network: str, batch: int, folder: Path, train: bool) -> list[Step]:
    model = folder / f"{network}-{batch}.onnx"
    steps = []
    seconds, rss, rc, _, err = run_step(
        ["zoo", network, "--batch", str(batch), "-q", "-o", str(model)]
    )
    detail = f"{model.stat().st_size / 1e3:.0f} kB file" if rc == 0 else _last_line(err)
    steps.append(Step(network, batch, "zoo", seconds, rss, rc == 0, detail))
    if not train or rc != 0:
        return steps
    training = folder / f"{network}-{batch}.train.onnx"
    seconds, rss, rc, _, err = run_step(
        ["train", str(model), "--batch", str(batch), "-o", str(training)]
    )
    detail = f"{training.stat().st_size / 1e3:.0f} kB file" if rc == 0 else _last_line(err)
    steps.append(Step(network, batch, "train", seconds, rss, rc == 0, detail))
    if rc != 0:
        return steps
    seconds, rss, rc, out, err = run_step(["info", "--json", str(training)])
    if rc == 0:
        summary = json.loads(out)
        detail = f"{summary['nodes']} nodes, footprint {summary['peak_live_bytes'] / 1e9:.1f} GB"
    else:
        detail = _last_line(err)
    steps.append(Step(network, batch, "info", seconds, rss, rc == 0, detail))
    return steps


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return ("FAILED: " + lines[-1]) if lines else "FAILED"


def table(steps: list[Step]) -> str:
    header = ["network", "batch", "step", "seconds", "x 10 s", "peak RSS MB", "x 1 GB", "result"]
    rows = [
        [
            s.network,
            str(s.batch),
            s.phase,
            f"{s.seconds:.2f}",
            f"{s.seconds / TARGET_SECONDS:.2f}",
            f"{s.max_rss_bytes / 1e6:.0f}",
            f"{s.max_rss_bytes / TARGET_BYTES:.2f}",
            s.detail,
        ]
        for s in steps
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def _median_seconds(session: Any, feeds: dict[str, Any], repeat: int = 7) -> float:
    session.run(None, feeds)  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def minis() -> str:
    """The embedded suite: sizes and onnxruntime timings of every -mini network."""
    import onnxruntime as ort
    from autotm_graph import zoo
    from autotm_graph.cli import main as graph_main
    from autotm_graph.ir import load_graph
    from autotm_graph.weights import example_inputs, parameter_values

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    header = "| network | batch | params | nodes (fwd / train) | fwd GFLOP | train footprint MB | ort fwd ms | ort train ms |"
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    with tempfile.TemporaryDirectory(prefix="graph-minis-") as tmp:
        for name, entry in zoo.NETWORKS.items():
            if entry.size != "mini":
                continue
            b = zoo.builder(name)
            flops = 2 * sum(
                math.prod(b.shapes[n.outputs[0]]) * math.prod(b.shapes[n.inputs[1]][1:])
                for n in b.nodes
                if n.op_type in ("Conv", "Gemm")
            )
            model, training = Path(tmp) / f"{name}.onnx", Path(tmp) / f"{name}.train.onnx"
            graph_main(["zoo", name, "-q", "-o", str(model)])
            if graph_main(["train", str(model), "--batch", str(b.batch), "-o", str(training)]):
                lines.append(f"| {name} | train failed |")
                continue
            seconds = []
            graphs = [load_graph(model), load_graph(training)]
            for graph in graphs:
                feeds = {**parameter_values(graph), **example_inputs(graph)}
                session = ort.InferenceSession(
                    graph.path, options, providers=["CPUExecutionProvider"]
                )
                seconds.append(_median_seconds(session, feeds))
            lines.append(
                f"| {name} | {b.batch} | {b.parameter_count():,} | {len(graphs[0].nodes)} / "
                f"{len(graphs[1].nodes)} | {flops / 1e9:.3f} | "
                f"{graphs[1].peak_live_bytes() / 1e6:.1f} | {seconds[0] * 1e3:.1f} | "
                f"{seconds[1] * 1e3:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NETWORK", help="networks to measure")
    parser.add_argument("--no-train", action="store_true", help="measure `zoo` only")
    parser.add_argument("--minis", action="store_true", help="size the -mini networks instead")
    args = parser.parse_args(argv)
    if args.minis:
        print(minis())
        return 0
    cases = [c for c in CASES if not args.only or c[0] in args.only]
    steps: list[Step] = []
    with tempfile.TemporaryDirectory(prefix="graph-build-") as tmp:
        for network, batch, kind in cases:
            print(f"measuring {network} at batch {batch} ({kind})", file=sys.stderr, flush=True)
            steps += measure(network, batch, Path(tmp), train=not args.no_train)
            for path in Path(tmp).iterdir():
                path.unlink()
    print(table(steps))
    worst_time = max(s.seconds / TARGET_SECONDS for s in steps)
    worst_rss = max(s.max_rss_bytes / TARGET_BYTES for s in steps)
    failed = sum(not s.ok for s in steps)
    print(
        f"\nworst ratio to target: time {worst_time:.2f}, memory {worst_rss:.2f}; "
        f"{failed} step(s) failed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
