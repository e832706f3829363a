"""GPU benchmark: planned movement (synchronous and asynchronous ILP) against CUDA unified memory
at two fast budgets, on one small zoo network, all measured in one run on one GPU.

For the network (default resnet50-mini at batch 32: its largest kernel needs under a tenth of
the footprint, so a quarter of it on the device is a feasible budget under the GPU rule) it runs the project's own commands, each a
fresh process with this Python (as the original restarted Julia between GPU runs):

1. ``autotm-graph zoo`` and ``autotm-graph train``: the training graph;
2. ``autotm-profile --device cuda``: every kernel timed in device memory, copy bandwidths;
3. for each budget (``--ratios``, slow:fast as in the paper, default 1:1 and 3:1, i.e. half and
   a quarter of the footprint on the device): ``autotm-optimize`` synchronous and asynchronous;
4. ``autotm-execute --device cuda``: all-fast once; per budget the two plans (``--verify``), and
   the unified-memory baseline (``--mode unified --fast-memory LIMIT``, LIMIT the plans' own
   fast limit: a managed pool of the whole footprint whose first LIMIT bytes, rounded down to
   2 MiB, are preferred on the device and the rest on the host, mapped for the device).

It prints one table, median iteration times side by side and speed = unified / plan (above 1:
the plan is faster than unified memory), and writes OUT/results.json.

Safety: the unified runs never ask for more managed memory than the device has free
(autotm-execute checks before allocating); this script refuses up front, in one line, when the
footprint is more than a quarter of the free device memory, and stops at ``--deadline``
seconds (exit 124) with what it has measured so far.

Usage (on a CUDA machine with cupy; see benchmarks/gpu.md)::

    python benchmarks/gpu_bench.py                                 # resnet50-mini, batch 32
    python benchmarks/gpu_bench.py --network densenet264-mini --batch 64 --ratios 1:1,4:1
    python benchmarks/gpu_bench.py --device cpu ...                # checks the steps, no GPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from autotm_graph.ir import load_graph
from autotm_schemas.units import format_bytes, parse_ratio

TOOLS = {
    "graph": "autotm_graph.cli",
    "profile": "autotm_profile.cli",
    "optimize": "autotm_optimize.cli",
    "execute": "autotm_execute.cli",
}
FORMULATIONS = ("synchronous", "asynchronous")


class Deadline(Exception):
    """The benchmark ran out of its time."""


class Bench:
    """Runs the tools as subprocesses under one deadline, logging each command."""

    def __init__(self, out: Path, deadline_s: float, quiet: bool) -> None:
        self.out = out
        self.stop_at = time.monotonic() + deadline_s
        self.quiet = quiet

    def tool(self, name: str, *args: str) -> None:
        code = f"import sys; from {TOOLS[name]} import main; sys.exit(main(sys.argv[1:]))"
        self.run([sys.executable, "-c", code, *args], f"autotm-{name} {' '.join(args)}")

    def run(self, argv: list[str], shown: str) -> str:
        left = self.stop_at - time.monotonic()
        if left <= 1:
            raise Deadline(shown)
        if not self.quiet:
            print(f"+ {shown}", file=sys.stderr, flush=True)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=left, check=False)
        except subprocess.TimeoutExpired:
            raise Deadline(shown) from None
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"gpu_bench: failed (exit {done.returncode}): {shown}")
        return done.stdout


def device_memory() -> tuple[str, int]:
    """Name and free memory of the GPU, asked in a child so this process holds no context."""
    code = (
        "import cupy; r = cupy.cuda.runtime; p = r.getDeviceProperties(cupy.cuda.Device().id);"
        "n = p['name']; print(n.decode() if isinstance(n, bytes) else n); print(r.memGetInfo()[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) < 2:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"gpu_bench: needs cupy and a CUDA device ({last}); see benchmarks/gpu.md")
    return lines[-2], int(lines[-1])


def median_ms(path: Path) -> float:
    return float(json.loads(path.read_text())["iterations"]["median_s"]) * 1e3


def ratio_tag(text: str) -> str:
    return text.replace(":", "x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="resnet50-mini", help="zoo network (resnet50-mini)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (32)")
    parser.add_argument("--ratios", default="1:1,3:1", help="slow:fast budgets (1:1,3:1)")
    parser.add_argument("--iterations", type=int, default=5, help="iterations per run (5)")
    parser.add_argument("--out", default="out/gpu-bench", help="work folder (out/gpu-bench)")
    parser.add_argument("--deadline", type=float, default=240.0, help="seconds in all (240)")
    parser.add_argument("--time-limit", default="15", help="ILP seconds per solve (15)")
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda (default); cpu checks this script's steps on a machine without a GPU "
        "(plain DRAM for both tiers, no unified runs: its numbers mean nothing)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="do not echo commands")
    args = parser.parse_args(argv)
    ratios = [r.strip() for r in args.ratios.split(",") if r.strip()]
    for text in ratios:
        parse_ratio(text)
    out = Path(args.out)
    for sub in ("plans", "runs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    bench = Bench(out, args.deadline, args.quiet)
    started = time.monotonic()
    results: dict[str, Any] = {"network": args.network, "batch": args.batch, "rows": []}
    try:
        cuda = args.device == "cuda"
        name, free = device_memory() if cuda else ("cpu (script check only)", 1 << 62)
        device = ["--device", "cuda"] if cuda else ["--device-model", "none"]
        model, train = out / "model.onnx", out / "train.onnx"
        bench.tool("graph", "zoo", args.network, "--batch", str(args.batch), "-q", "-o", str(model))
        bench.tool("graph", "train", str(model), "--batch", str(args.batch), "-o", str(train))
        footprint = load_graph(train).peak_live_bytes()
        results.update(gpu=name, free_device_bytes=free, footprint_bytes=footprint)
        if footprint * 4 > free:
            raise SystemExit(
                f"gpu_bench: footprint {format_bytes(footprint)} is more than a quarter of the "
                f"{format_bytes(free)} free on {name}: pick a smaller --network/--batch"
            )
        execute = [*device, "--iterations", str(args.iterations), "-q"]
        profile = out / "profile"
        bench.tool(
            "profile", str(train), *device, "--time-budget", "0.01",
            "--copy-sizes", "64KiB,1MiB,8MiB,32MiB", "--cache", str(out / "cache"), "-q",
            "-o", str(profile),
        )  # fmt: skip
        all_fast = out / "runs" / "all-fast.json"
        bench.tool("execute", str(train), *execute, "--verify", "-o", str(all_fast))
        results["all_fast_ms"] = median_ms(all_fast)
        for ratio in ratios:
            tag = ratio_tag(ratio)
            row: dict[str, Any] = {"ratio": ratio}
            results["rows"].append(row)
            for formulation in FORMULATIONS:
                plan = out / "plans" / f"{formulation}@{tag}.json"
                bench.tool(
                    "optimize", str(profile), "--formulation", formulation, "--ratio", ratio,
                    "--time-limit", args.time_limit, "-q", "-o", str(plan),
                )  # fmt: skip
                row["fast_limit_bytes"] = json.loads(plan.read_text())["fast_limit_bytes"]
                run = out / "runs" / f"{formulation}@{tag}.json"
                bench.tool("execute", str(train), "--plan", str(plan), *execute, "--verify",
                           "-o", str(run))  # fmt: skip
                row[f"{formulation}_ms"] = median_ms(run)
            if not cuda:
                continue
            unified = out / "runs" / f"unified@{tag}.json"
            bench.tool("execute", str(train), "--mode", "unified", "--fast-memory",
                       str(row["fast_limit_bytes"]), *execute, "-o", str(unified))  # fmt: skip
            fast = json.loads(unified.read_text())["tiers"]["fast"]
            row["unified_ms"] = median_ms(unified)
            row["unified_device_bytes"] = fast.get("managed_device_bytes")
            row["unified_host_bytes"] = fast.get("managed_host_bytes")
    except Deadline as stopped:
        results["stopped"] = f"deadline of {args.deadline:.0f} s reached at: {stopped}"
    results["seconds"] = round(time.monotonic() - started, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 124 if "stopped" in results else 0


def table(results: dict[str, Any]) -> str:
    """The side-by-side table: medians in ms, speed = unified / plan (above 1: plan faster)."""
    lines = [
        f"gpu_bench: {results['network']} batch {results['batch']} on {results.get('gpu', '?')}"
        f", footprint {format_bytes(results.get('footprint_bytes', 0))}, all-fast "
        f"{results.get('all_fast_ms', float('nan')):.3f} ms (all numbers measured, median "
        "iteration)",
        f"{'budget':>7} {'limit':>10} {'unified':>9} {'sync':>9} {'async':>9} "
        f"{'sync speed':>10} {'async speed':>11} {'unified device+host':>20}",
    ]
    for row in results["rows"]:
        unified = row.get("unified_ms", float("nan"))
        sync = row.get("synchronous_ms", float("nan"))
        asyn = row.get("asynchronous_ms", float("nan"))
        split = (
            f"{format_bytes(row['unified_device_bytes'])}+{format_bytes(row['unified_host_bytes'])}"
            if row.get("unified_device_bytes") is not None
            else "-"
        )
        lines.append(
            f"{row['ratio']:>7} {format_bytes(row.get('fast_limit_bytes', 0)):>10} "
            f"{unified:>9.3f} {sync:>9.3f} {asyn:>9.3f} {unified / sync:>10.2f} "
            f"{unified / asyn:>11.2f} {split:>20}"
        )
    if "stopped" in results:
        lines.append(f"gpu_bench: stopped: {results['stopped']}")
    lines.append(f"gpu_bench: {results['seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
