"""autotm-execute overhead: Python dispatch per kernel, and iteration time over kernel time.

For each network, side by side in one process:

* dispatch: the executor's loop with every kernel replaced by a no-op (same views, same
  per-node bookkeeping and timers), so the iteration time divided by the node count is what
  the executor itself costs per kernel (target: under 20 microseconds);
* iteration / kernels: real kernels, all tensors fast; each iteration's time over the sum of
  that iteration's kernel times, median over the measured iterations (target: 1.05 or less);
  the per-iteration ratio is robust to a shared machine's noise, a ratio of medians is not.

    .venv/bin/python benchmarks/execute_dispatch.py                   # tiny_mlp, vgg19-mini
    .venv/bin/python benchmarks/execute_dispatch.py --networks resnet50-mini --batch 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
from autotm_execute.executor import Executor, bind_kernels, scratch_bytes_of
from autotm_execute.schedule import unplanned_schedule
from autotm_execute.tiers import TierOptions, open_tiers
from autotm_execute.values import initial_values
from autotm_graph.ir import Graph, load_graph

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.handmade import tiny_mlp


class NoOp:
    """A kernel that does nothing: what is left of an iteration is the executor's own cost."""

    scratch_bytes = 0

    def run(
        self, xp: ModuleType, inputs: Sequence[Any], outputs: Sequence[Any], scratch: Any
    ) -> None:
        return None


def write_network(name: str, batch: int, folder: Path) -> Path:
    path = folder / f"{name}.onnx"
    if name == "tiny_mlp":
        onnx.save(tiny_mlp(batch=batch), str(path))
        return path
    from autotm_graph.train import TrainOptions, build_training_model
    from autotm_graph.zoo import build

    model = build_training_model(build(name, batch=batch), TrainOptions(batch=batch), name)
    onnx.save(model, str(path))
    return path


def run(graph: Graph, kernels: list[Any], iterations: int) -> Executor:
    schedule = unplanned_schedule(graph, "all-fast")
    sizes = Executor.pool_sizes(schedule, scratch_bytes_of(kernels))
    with open_tiers(TierOptions(device_model="none"), sizes["fast"], sizes["slow"]) as tiers:
        executor = Executor(graph, schedule, tiers, initial_values(graph, 0), kernels)
        executor.run(iterations)
        executor.close()
    return executor


def measure(name: str, batch: int, iterations: int, folder: Path) -> dict[str, float]:
    graph = load_graph(write_network(name, batch, folder))
    n = len(graph.nodes)
    noop = run(graph, [NoOp() for _ in graph.nodes], iterations * 20)
    dispatch_us = float(np.median(noop.timings.iteration_s[1:])) / n * 1e6
    real = run(graph, bind_kernels(graph), iterations + 1)
    iteration = np.array(real.timings.iteration_s[1:])
    kernels = np.array(real.timings.kernel_s)[1:].sum(axis=1)
    return {
        "nodes": n,
        "dispatch_us": dispatch_us,
        "iteration_ms": float(np.median(iteration)) * 1e3,
        "kernels_ms": float(np.median(kernels)) * 1e3,
        "ratio": float(np.median(iteration / kernels)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["tiny_mlp", "vgg19-mini"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{'network':<18}{'nodes':>6}{'dispatch us/kernel':>20}{'x 20 us':>9}"
        f"{'iteration ms':>14}{'kernels ms':>12}{'iter/kernels':>14}{'x 1.05':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks:
            r = measure(name, args.batch, args.iterations, Path(tmp))
            print(
                f"{name:<18}{r['nodes']:>6}{r['dispatch_us']:>20.2f}{r['dispatch_us'] / 20:>9.2f}"
                f"{r['iteration_ms']:>14.3f}{r['kernels_ms']:>12.3f}{r['ratio']:>14.4f}"
                f"{r['ratio'] / 1.05:>8.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
