"""autotm-profile benchmark: cold and warm profiles of the default network, and graph counts.

1. Wall time of ``autotm-profile`` on the embedded default network (a zoo ``-mini`` network,
   vgg19-mini at its default batch unless told otherwise) from an empty cache and again from
   the warm one, each as a fresh process (the time a user waits), printed beside the targets
   (cold under 2 minutes on 2 cores, warm under 5 seconds) with the ratio to each, with what
   the run timed, derived and set aside as stalled. ``--per-config`` adds, side by side, a cold
   profile that times every configuration in its own placement (a real slow tier: a
   ``--slow-dir`` pool file, which outside a DAX mount is page-cache DRAM -- the same memory
   the emulated tier uses), i.e. the cost the derived profile saves, and how far the medians of
   one kernel's configurations stray from each other there (the noise deriving removes), under
   the current timing protocol and, in the same run, the one before stalls were handled
   (protocol 1: no call set aside, no extension on a wide spread).
2. For every full-size zoo network at its paper batch: nodes, unique kernels and
   configurations the graph reduces to (graph-only counting: nothing is timed).

Usage::

    .venv/bin/python benchmarks/profile_bench.py                 # both parts
    .venv/bin/python benchmarks/profile_bench.py --counts-only   # part 2 only (seconds)
    .venv/bin/python benchmarks/profile_bench.py --network resnet50-mini --batch 16
    .venv/bin/python benchmarks/profile_bench.py --network vgg19-mini resnet200-mini \
        inception_v4-mini densenet264-mini --skip-counts       # the four -mini networks
    .venv/bin/python benchmarks/profile_bench.py --per-config --skip-counts
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx
from autotm_execute.tiers import TierOptions
from autotm_graph import zoo
from autotm_graph.ir import load_graph
from autotm_graph.train import TrainOptions, build_training_model
from autotm_profile.profiler import Options, plan_profile, profile
from autotm_profile.timing import Protocol
from autotm_schemas import read_table

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


def timed_profile(graph: Path, out: Path, cache: Path, *extra: str) -> tuple[float, dict]:
    """Wall seconds of one profile process, and its profile.json."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable, "-m", "autotm_profile", str(graph), "-o", str(out),
            "--cache", str(cache), "--quiet", *extra,
        ],
        check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return seconds, json.loads((out / "profile.json").read_text())


def _row(label: str, seconds: float, target: float, manifest: dict) -> str:
    c = manifest["counts"]
    return (
        f"| {label} | {seconds:.1f} | {target:.0f} | {seconds / target:.2f} | {c['timed']} | "
        f"{c['from_cache']} | {c.get('derived', 0)} | {c.get('discarded_calls', 0)} | "
        f"{c.get('unsettled', 0)} |"
    )


def spread(measured: Path) -> str:
    """In a profile that timed every configuration in DRAM (no penalty), how far the medians of
    one kernel's configurations stray from each other: pure noise, which deriving removes."""
    table = read_table(measured / "kernels.parquet", "kernels").to_pylist()
    medians: dict[str, list[float]] = {}
    for row in table:
        medians.setdefault(row["kernel_key"], []).append(row["median_s"])
    ratios = sorted(max(v) / min(v) for v in medians.values() if len(v) > 1)
    return (
        f"sibling spread (largest / smallest median among one kernel's configurations, all in "
        f"DRAM): median {statistics.median(ratios):.2f}, 90th percentile "
        f"{ratios[int(0.9 * (len(ratios) - 1))]:.2f}, max {ratios[-1]:.2f} over {len(ratios)} "
        "kernels"
    )


def cold_and_warm(name: str, batch: int | None, folder: Path, per_config: bool) -> None:
    graph, batch = training_graph(name, batch, folder)
    cache = folder / f"cache-{name}"
    cold, cold_doc = timed_profile(graph, folder / f"cold-{name}", cache)
    warm, warm_doc = timed_profile(graph, folder / f"warm-{name}", cache)
    plan = plan_profile(load_graph(graph), Options())
    print(
        f"\n## {name} batch {batch}: {len(plan.kernels)} unique kernels, "
        f"{plan.configurations} configurations, {os.cpu_count()} CPUs\n"
    )
    print(
        "| run | wall s | target s | ratio to target | timed | from cache | derived | stalled "
        "| unsettled |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(_row("cold cache", cold, COLD_TARGET_S, cold_doc))
    print(_row("warm cache", warm, WARM_TARGET_S, warm_doc))
    if per_config:
        slow_dir = folder / f"slow-{name}"
        slow_dir.mkdir()
        out = folder / f"per-config-{name}"
        each, each_doc = timed_profile(
            graph, out, folder / f"cache-each-{name}", "--slow-dir", str(slow_dir)
        )
        print(_row("cold, every configuration timed (--slow-dir)", each, COLD_TARGET_S, each_doc))
        print(f"\nderived cold / per-configuration cold = {cold / each:.2f}")
        print(f"protocol 2: {spread(out)}")
        # The same per-configuration profile under the protocol before stalls were handled
        # (no call set aside, no extension), in this process, for the sibling spread only.
        old_out = folder / f"per-config-old-{name}"
        started = time.perf_counter()
        profile(
            str(graph),
            old_out,
            Options(
                tiers=TierOptions(slow_dir=str(slow_dir)),
                cache_dir=folder / f"cache-old-{name}",
                protocol=Protocol(stall_share=0.0, spread_limit=1e12),  # never wide
                quiet=True,
            ),
            io.StringIO(),
        )
        old_s = time.perf_counter() - started
        print(f"protocol 1 (before; {old_s:.1f} s in-process): {spread(old_out)}")
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
    parser.add_argument(
        "--network", nargs="+", default=["vgg19-mini"], help="networks to profile (zoo names)"
    )
    parser.add_argument("--batch", type=int, help="their batch (default: the zoo's)")
    parser.add_argument("--counts-only", action="store_true", help="skip the timed profiles")
    parser.add_argument("--skip-counts", action="store_true", help="skip the graph counts")
    parser.add_argument(
        "--per-config",
        action="store_true",
        help="also time every configuration separately (a --slow-dir profile), side by side",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-bench-") as tmp:
        folder = Path(tmp)
        if not args.counts_only:
            for name in args.network:
                cold_and_warm(name, args.batch, folder, args.per_config)
        if not args.skip_counts:
            counts(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
