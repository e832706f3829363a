"""autotm-profile benchmark: cold and warm profiles of the default network, and graph counts.

1. Wall time of ``autotm-profile`` on the embedded default network (a zoo ``-mini`` network,
   vgg19-mini at its default batch unless told otherwise) from an empty cache and again from
   the warm one, each as a fresh process (the time a user waits), printed beside the targets
   (cold under 2 minutes on 2 cores, warm under 5 seconds) with the ratio to each.
2. For every full-size zoo network at its paper batch: nodes, unique kernels and
   configurations the graph reduces to (graph-only counting: nothing is timed).

Usage::

    .venv/bin/python benchmarks/profile_bench.py                 # both parts
    .venv/bin/python benchmarks/profile_bench.py --counts-only   # part 2 only (seconds)
    .venv/bin/python benchmarks/profile_bench.py --network resnet50-mini --batch 16
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx
from autotm_graph import zoo
from autotm_graph.ir import load_graph
from autotm_graph.train import TrainOptions, build_training_model
from autotm_profile.profiler import Options, plan_profile

COLD_TARGET_S = 120.0
WARM_TARGET_S = 5.0
#: The paper's batches: conventional (Inception v4, ResNet-200, VGG19, DenseNet-264) and the
#: large VGG416; ResNet-50 is not in the paper and takes the zoo's default batch.
PAPER_BATCHES = {
    "vgg19": 2048,
    "inception_v4": 1024,
    "resnet200": 512,
    "densenet264": 512,
    "vgg416": 320,
    "resnet50": None,
}


def training_graph(name: str, batch: int | None, folder: Path) -> tuple[Path, int]:
    batch = batch or zoo.network(name).batch
    path = folder / f"{name}-{batch}.onnx"
    model = build_training_model(
        zoo.build(name, batch=batch), TrainOptions(batch=batch, network=name), name
    )
    onnx.save(model, path)
    return path, batch


def timed_profile(graph: Path, out: Path, cache: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "autotm_profile", str(graph), "-o", str(out), "--cache", str(cache)],
        check=True,
    )
    return time.perf_counter() - started


def cold_and_warm(name: str, batch: int | None, folder: Path) -> None:
    graph, batch = training_graph(name, batch, folder)
    cache = folder / "cache"
    cold = timed_profile(graph, folder / "cold", cache)
    warm = timed_profile(graph, folder / "warm", cache)
    plan = plan_profile(load_graph(graph), Options())
    print(
        f"\n## {name} batch {batch}: {len(plan.kernels)} unique kernels, "
        f"{plan.configurations} configurations, {os.cpu_count()} CPUs\n"
    )
    print("| run | wall s | target s | ratio to target |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| cold cache | {cold:.1f} | {COLD_TARGET_S:.0f} | {cold / COLD_TARGET_S:.2f} |")
    print(f"| warm cache | {warm:.1f} | {WARM_TARGET_S:.0f} | {warm / WARM_TARGET_S:.2f} |")
    print(f"\nwarm / cold = {warm / cold:.3f}")


def counts(folder: Path) -> None:
    print("\n## Full-size networks at their paper batch (graph only, default options)\n")
    print(
        "| network | batch | nodes | unique kernels | configurations | max per kernel "
        "| tied kernels | fixed tensors | seconds |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    options = Options()
    for name, batch in PAPER_BATCHES.items():
        started = time.perf_counter()
        path, batch = training_graph(name, batch, folder)
        graph = load_graph(path)
        plan = plan_profile(graph, options)
        seconds = time.perf_counter() - started
        widest = max(len(k.configs) for k in plan.kernels)
        tied = sum(
            1
            for k in plan.kernels
            if sum(plan.fixed[n] is None for n in {*k.node.inputs, *k.node.outputs} if n)
            > options.max_varied
        )
        fixed = sum(tier is not None for tier in plan.fixed.values())
        print(
            f"| {name} | {batch} | {len(graph.nodes)} | {len(plan.kernels)} | "
            f"{plan.configurations} | {widest} | {tied} | {fixed} | {seconds:.1f} |"
        )
        path.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="vgg19-mini", help="default network (zoo name)")
    parser.add_argument("--batch", type=int, help="its batch (default: the zoo's)")
    parser.add_argument("--counts-only", action="store_true", help="skip the timed profiles")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-bench-") as tmp:
        folder = Path(tmp)
        if not args.counts_only:
            cold_and_warm(args.network, args.batch, folder)
        counts(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
